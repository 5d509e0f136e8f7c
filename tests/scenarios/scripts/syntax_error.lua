--- Meta-test: a Lua syntax error is reported with file:line.
local x = = 1
