--- A node keeps local views of a remote table: copied once, followed live, and synced both ways.
package.path = debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "lib/?.lua;" .. package.path
local shop = require("shop")

local n
step("start a node", function()
  n = node.start("shop", shop.config())
  say("Started node 'shop'. Its remote 'inventory' is an in-memory table of 3 items;")
  say("it keeps three local views of it in its LevelDB store:")
  say("  shop.items  materialized — a copy refreshed by each sync")
  say("  shop.live   realtime     — a copy that follows the remote's change stream")
  say("  shop.cart   sync         — like realtime, and local writes are pushed back")
  await(function()
    for _, v in ipairs(n:status()) do if not shop.settled(v) then return false end end
    return true
  end, 10000, "every view finished its first sync (realtime and sync views keep running)")
end)

step("read a view", function()
  local q = n:query("shop.items")
  check(#q.rows == 3, "shop.items holds the remote's 3 rows")
  say("shop.items: " .. #q.rows .. " rows, e.g. " .. q.rows[1][2] .. " at " .. q.rows[1][3])
end)

step("write locally and watch it travel", function()
  n:exec("shop.cart", { upsert = { { id = 4, title = "fig", price = "2.10" } } })
  say("Wrote item 4 (fig) into the sync view shop.cart; it commits locally at once")
  say("and is pushed to the remote from the outbox.")
  await(function() return shop.count(n, "shop.live") == 4 end, 10000,
        "the realtime view shop.live saw the write come back from the remote")
  check(shop.count(n, "shop.items") == 3, "the materialized view waits for its next sync")
  n:sync("shop.items")
  check(shop.count(n, "shop.items") == 4, "after a sync the materialized view has it too")
  check_equal(n:digest("shop.items"), n:digest("shop.live"), "shop.items and shop.live converged")
  check_equal(n:digest("shop.cart"), n:digest("shop.live"), "shop.cart and shop.live converged")
  say("All three views now hold the same rows (equal digests).")
end)

step("lose the remote and come back on our own", function()
  n:outage("inventory", true)
  say("Took the remote down: the views that follow it fail and retry with backoff...")
  await(function() return shop.view(n, "shop.live").state == "failed" end, 10000,
        "shop.live reports the outage")
  local v = shop.view(n, "shop.live")
  say("  shop.live: " .. v.state .. " — " .. v.last_error)
  n:exec("shop.cart", { upsert = { { id = 5, title = "kiwi", price = "0.60" } } })
  say("A write made while offline is kept in the outbox.")
  n:outage("inventory", false)
  say("Brought the remote back; nobody calls sync — the node recovers by itself.")
  await(function() return shop.count(n, "shop.live") == 5 end, 15000,
        "the offline write reached the remote and came back through the stream")
  await(function() return shop.view(n, "shop.cart").outbox.pending == 0 end, 10000,
        "the outbox drained")
end)

step("status", function()
  for _, v in ipairs(n:status()) do
    say(string.format("  %-11s %-12s %-7s retries=%d", v.namespace .. "." .. v.name,
                      v.persistence, v.state, v.retry_count))
  end
end)

if postgres.available() then
  step("a throwaway PostgreSQL", function()
    local pg = postgres.start()
    pg:sql("CREATE TABLE items (id int PRIMARY KEY, title text); " ..
           "INSERT INTO items VALUES (1, 'apple'), (2, 'pear')")
    say("Started a throwaway PostgreSQL with a 2-row items table, and a second node")
    say("with a materialized view of it:")
    local reader = node.start("pgreader", {
      remotes = { { name = "pg", kind = "postgres", conninfo = pg:conninfo() } },
      views = { { namespace = "pg", name = "items", persistence = "materialized",
                  remote = "pg", source = "public.items" } } })
    local r = reader:sync("pg.items")[1]
    check(r.state == "synced", "the PostgreSQL table was materialized", r.error)
    check(#reader:query("pg.items").rows == 2, "the node holds the table's 2 rows")
    say("  pg.items: " .. r.pulled .. " rows copied with COPY, now readable locally.")
    reader:shutdown()
  end)
end

step("stop the node", function()
  n:shutdown()
  say("Stopped the node in order: views, connectors, then the store.")
end)
