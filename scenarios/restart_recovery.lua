--- A node killed with SIGKILL restarts on its data directory with rows and job state intact.
package.path = debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "lib/?.lua;" .. package.path
local shop = require("shop")

local n = node.start("phoenix", shop.config())
await(function() return shop.ready(n, "shop.cart") end, 10000,
      "shop.cart follows the remote")

local before_items
step("change things, then crash", function()
  n:exec("shop.cart", { upsert = { { id = 20, title = "durable", price = "9.99" } } })
  await(function() return shop.count(n, "shop.live") == 4 end, 10000, "the write went round")
  n:sync("shop.items")
  n:stop("shop.items")
  before_items = n:digest("shop.items")
  n:kill()
  check(not n:running(), "the node is gone (SIGKILL)")
end)

step("restart on the same data directory", function()
  n:start()
  local items = shop.view(n, "shop.items")
  check(items.enabled == false, "the view stopped before the crash is still stopped")
  check_equal(n:digest("shop.items"), before_items, "shop.items rows are as they were")
  check(shop.count(n, "shop.items") == 4, "the row written before the crash is in shop.items")
  -- The in-memory remote itself starts afresh with the node process, so the
  -- views that follow it re-sync to its 3 seed rows on their own.
  await(function() return shop.count(n, "shop.live") == 3 end, 10000,
        "shop.live re-synced with the restarted remote")
  say("After the crash the node found its rows and its job states where it left them.")
end)

n:shutdown()
