--- Meta-test: a runtime error after a node started is reported with file:line and cleaned up.
local n = node.start("doomed", { remotes = {}, views = {} })
local t = nil
say("about to fail")
local y = t.field
