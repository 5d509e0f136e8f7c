--- Meta-test: a run interrupted with SIGINT cleans up its nodes and directories.
local n = node.start("sleeper", { remotes = {}, views = {} })
say("ready for SIGINT")
await(function() return false end, 600000, "never")
