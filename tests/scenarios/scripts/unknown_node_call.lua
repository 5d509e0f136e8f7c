--- Meta-test: calling the API wrongly gives a sentence.
local n = node.start("a", { remotes = {}, views = {} })
n:query("no.such_view")
