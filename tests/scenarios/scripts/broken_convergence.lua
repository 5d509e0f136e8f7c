--- Meta-test: convergence is asserted across a permanent outage, so this scenario must fail.
local n = node.start("island", {
  retry = { initial_ms = 50, max_ms = 200, jitter = 0 },
  remotes = { { name = "inventory", kind = "memory", start_down = true,
                tables = { { name = "items",
                             columns = { { name = "id", type = "integer", key = true },
                                         { name = "title", type = "text" } },
                             rows = { { 1, "apple" } } } } } },
  views = { { namespace = "shop", name = "live", persistence = "realtime",
              remote = "inventory", source = "items" } } })
step("assert convergence across a permanent partition", function()
  await(function() return #n:query("shop.live").rows == 1 end, 1500,
        "shop.live converged with its remote")
end)
