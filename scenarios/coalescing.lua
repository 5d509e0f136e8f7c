--- Overlapping sync calls coalesce: concurrent calls on one view cost at most two runs.
package.path = debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "lib/?.lua;" .. package.path
local shop = require("shop")

-- Each snapshot takes 100 ms, as with a real table, so calls made at once
-- overlap the run they coalesce into.
local cfg = shop.config()
cfg.remotes[1].snapshot_delay_ms = 100
local n = node.start("coalesce", cfg)
await(function() return shop.view(n, "shop.items").state == "synced" end, 10000,
      "shop.items finished its first sync")

local function runs_started()
  local c = 0
  for _, e in ipairs(n:events()) do
    if e.type == "sync:start" and e.view == "shop.items" then c = c + 1 end
  end
  return c
end

step("four concurrent calls", function()
  local before = shop.view(n, "shop.items").runs
  local results = n:sync_concurrently(4, "shop.items")
  local seen = {}
  for _, r in ipairs(results) do
    local one = r[1]
    check(one.state == "synced", "every caller sees a completed run")
    check(one.run > before, "every caller's run started after its call")
    seen[one.run] = true
  end
  local distinct = 0
  for _ in pairs(seen) do distinct = distinct + 1 end
  check(distinct <= 2, "four calls were served by at most two runs", distinct .. " runs")
  check(shop.view(n, "shop.items").runs - before <= 2, "the view started at most two runs")
  figure("runs_for_4_calls", shop.view(n, "shop.items").runs - before)
end)

step("a storm of calls", function()
  local before = shop.view(n, "shop.items").runs
  local results = n:sync_concurrently(50, "shop.items")
  check(#results == 50, "all fifty callers were answered")
  local after = shop.view(n, "shop.items").runs
  check(after - before <= 2 * 50, "no more runs than calls")
  figure("runs_for_50_calls", after - before)
  say("50 concurrent calls cost " .. (after - before) .. " runs")
end)

n:shutdown()
