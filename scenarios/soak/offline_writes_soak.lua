--- Soak: thousands of writes through repeated outages and restarts; nothing acknowledged is lost.
package.path = debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "../lib/?.lua;" .. package.path
local shop = require("shop")

local n = node.start("soak", shop.config())
await(function() return shop.ready(n, "shop.cart") end, 10000, "following the remote")
local all = { rows = {} }
for round = 1, 60 do
  step("round " .. round, function()
    local w = workload{ node = n, view = "shop.cart", writes = 250, key_space = 2000,
                        make = function(i, key) return { id = key, title = "r" .. round .. "-" .. i } end }
    check(w.failed == 0, "every write acknowledged")
    for k, row in pairs(w.rows) do all.rows[k] = row end
    n:outage("inventory", random(0, 1) == 1)
  end)
end
n:outage("inventory", false)
await(function() return shop.view(n, "shop.cart").outbox.pending == 0 end, 60000, "drained")
check_acknowledged(n, "shop.cart", all)
await(function() return n:digest("shop.live") == n:digest("shop.cart") end, 60000, "converged")
n:shutdown()
