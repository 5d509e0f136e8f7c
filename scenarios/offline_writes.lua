--- Local writes made while the remote comes and goes are all kept and all reach it.
package.path = debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "lib/?.lua;" .. package.path
local shop = require("shop")

local cfg = shop.config({ durability = "buffered" })
-- The remote loses the acknowledgement of the first pushes, so the node
-- retransmits them; each mutation must still be applied once.
cfg.remotes[1].drop_push_acks = 4
local n = node.start("flaky", cfg)
await(function() return shop.ready(n, "shop.cart") end, 10000,
      "shop.cart follows the remote")

local all = { rows = {} }
step("write through three outages", function()
  for round = 1, 3 do
    local w = workload{ node = n, view = "shop.cart", writes = 60, key_space = 100,
                        make = function(i, key)
                          return { id = key, title = "r" .. round .. "-w" .. i }
                        end }
    check(w.failed == 0, "round " .. round .. ": every write was acknowledged")
    for k, row in pairs(w.rows) do all.rows[k] = row end
    figure("round_" .. round .. "_write_p50_ms", w.p50_ms)
    n:outage("inventory", round % 2 == 1)
  end
  n:outage("inventory", false)
end)

step("everything acknowledged is everywhere", function()
  check_acknowledged(n, "shop.cart", all)
  await(function() return shop.view(n, "shop.cart").outbox.pending == 0 end, 20000,
        "the outbox drained after the last outage")
  await(function() return n:digest("shop.live") == n:digest("shop.cart") end, 20000,
        "the remote (seen through shop.live) holds exactly the local rows")
  check_acknowledged(n, "shop.live", all)
  local stats = n:remote_stats("inventory")
  check(stats.retransmissions_skipped > 0, "lost acknowledgements made the node retransmit",
        stats.retransmissions_skipped .. " retransmitted mutations skipped")
  check_applied_once(n, "inventory")
end)

n:shutdown()
