--- stop halts a realtime view and a plain sync does not restart it; resume catches up.
package.path = debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "lib/?.lua;" .. package.path
local shop = require("shop")

local n = node.start("stopper", shop.config())
await(function() return shop.ready(n, "shop.live") end, 10000,
      "shop.live follows the remote")

step("stop", function()
  n:stop("shop.live")
  local v = shop.view(n, "shop.live")
  check(v.enabled == false, "the stopped view is disabled")
  n:exec_remote("inventory", "items", { upsert = { { id = 10, title = "missed", price = "1" } } })
  local r = n:sync("shop.live")[1]
  check(r.skipped == true, "a plain sync does not restart a stopped view")
  check(shop.count(n, "shop.live") == 3, "the stopped view did not apply the remote write")
end)

step("resume", function()
  local r = n:resume("shop.live")[1]
  check(r.state == "running", "resume ran the view and it follows the stream again")
  -- Resume answers once the view follows its stream again; what came while
  -- it was stopped arrives through the stream.
  await(function() return shop.count(n, "shop.live") == 4 end, 10000,
        "resume caught up on the write made while stopped")
  n:exec_remote("inventory", "items", { upsert = { { id = 11, title = "live again", price = "1" } } })
  await(function() return shop.count(n, "shop.live") == 5 end, 10000,
        "the resumed view follows the stream again")
end)

n:shutdown()
