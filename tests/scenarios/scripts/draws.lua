--- Meta-test: prints seeded random draws so a test can compare two runs.
local t = {}
for i = 1, 5 do t[#t + 1] = random(1, 1000000) end
say("draws " .. table.concat(t, ","))
