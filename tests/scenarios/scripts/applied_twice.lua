--- Meta-test: a remote without mutation bookkeeping applies retransmitted writes again, and the check says so.
local n = node.start("careless", {
  retry = { initial_ms = 50, max_ms = 200, jitter = 0 },
  remotes = { { name = "inventory", kind = "memory", dedupe_mutations = false, drop_push_acks = 2,
                tables = { { name = "items",
                             columns = { { name = "id", type = "integer", key = true },
                                         { name = "title", type = "text" } },
                             rows = { { 1, "apple" } } } } } },
  views = { { namespace = "shop", name = "cart", persistence = "sync",
              remote = "inventory", source = "items" } } })
await(function() return n:status()[1].state == "running" end, 10000, "shop.cart follows the remote")
n:exec("shop.cart", { upsert = { { id = 2, title = "pear" } } })
await(function() return n:status()[1].outbox.pending == 0 end, 10000, "the outbox drained")
check_applied_once(n, "inventory")
