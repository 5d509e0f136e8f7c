--- Views of a real PostgreSQL table: materialized by COPY, realtime through a logical replication slot.
package.path = debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "lib/?.lua;" .. package.path
local pgview = require("pgview")
local pg = pgview.start_postgres()
if not pg then return end
pg:sql([[CREATE TABLE items (id bigint PRIMARY KEY, title text, price numeric(8,2), note text);
         INSERT INTO items SELECT g, 'item ' || g, g * 1.25, NULL FROM generate_series(1, 500) g]])
say("Started a throwaway PostgreSQL with table items (500 rows).")

-- `buffered`: the realtime view's stream thread writes its batches itself
-- (through the view's gate); postgres_stream and postgres_slots run the
-- default `fsync`, where they go through the store actor.
local function config()
  return {
    durability = "buffered",
    retry = { initial_ms = 100, max_ms = 1000, jitter = 0.1 },
    remotes = { { name = "pg", kind = "postgres", conninfo = pg:conninfo() } },
    views = {
      { namespace = "pg", name = "copy", persistence = "materialized", remote = "pg",
        source = "public.items" },
      { namespace = "pg", name = "live", persistence = "realtime", remote = "pg",
        source = "public.items" },
      { namespace = "pg", name = "cheap", persistence = "materialized", remote = "pg",
        source = "public.items", columns = { "id", "title", "price" },
        filters = { { column = "price", op = "<", value = 10 } } } } }
end

local n = node.start("pgnode", config())
local function view(name)
  for _, v in ipairs(n:status("pg." .. name)) do return v end
end
local function count(name) return #n:query("pg." .. name).rows end
local function value_of(name, id, column)
  for _, r in ipairs(n:rows("pg." .. name)) do
    if r.id == id then return r[column] end
  end
end

step("materialize", function()
  local r = n:sync("pg.copy")[1]
  check(r.state == "synced", "sync() on a materialized view reports synced", r.error)
  check(count("copy") == 500, "the materialized view holds all 500 rows")
  check(count("cheap") == 7, "columns and filters narrow the copy (price < 10: 7 rows)")
  check(value_of("copy", 4, "price") == "5.00", "numeric values arrive exactly")
end)

step("follow the stream", function()
  await(function() return count("live") == 500 end, 20000, "the realtime view bootstrapped from its slot's snapshot")
  await(function() local v = view("live"); return v.state == "running" and v.streaming end, 10000,
        "a realtime view that follows its stream reports running")
  pg:sql("INSERT INTO items VALUES (1001, 'new', 3.50, 'x')")
  pg:sql("UPDATE items SET title = 'renamed' WHERE id = 2")
  pg:sql("DELETE FROM items WHERE id = 3")
  await(function() return value_of("live", 1001, "title") == "new" end, 10000, "an upstream INSERT arrived")
  await(function() return value_of("live", 2, "title") == "renamed" end, 10000, "an upstream UPDATE arrived")
  await(function() return value_of("live", 3, "title") == nil end, 10000, "an upstream DELETE arrived")
  local big = string.rep("toast ", 5000)
  pg:sql("UPDATE items SET note = '" .. big .. "' WHERE id = 5")
  pg:sql("UPDATE items SET price = 99.99 WHERE id = 5")
  await(function() return value_of("live", 5, "price") == "99.99" end, 10000,
        "an update that leaves a TOASTed column unchanged arrived")
  check(value_of("live", 5, "note") == big, "the unchanged TOASTed value was kept from the local row")
  check(count("copy") == 500, "the materialized view did not follow the stream")
end)

step("stop and resume", function()
  n:stop("pg.live")
  pg:sql("INSERT INTO items VALUES (1002, 'while stopped', 1, NULL)")
  local r = n:sync("pg.live")[1]
  check(r.skipped == true, "a plain sync does not restart a stopped realtime view")
  -- A full copy of the table takes longer than the stream would have:
  -- once the materialized view holds the row, the realtime one had time.
  n:sync("pg.copy")
  check(value_of("copy", 1002, "title") == "while stopped", "the materialized view copied the row")
  check(value_of("live", 1002, "title") == nil, "changes made while stopped are not applied")
  local runs = view("live").runs
  n:resume("pg.live")
  await(function() return value_of("live", 1002, "title") == "while stopped" end, 10000,
        "resume caught up on what was missed")
  local v = view("live")
  check(v.runs == runs + 1 and v.last_run.pulled == 0,
        "resume followed on from the slot without a new snapshot",
        "runs " .. v.runs - runs .. ", pulled " .. tostring(v.last_run.pulled))
end)

step("four concurrent syncs", function()
  local before = view("copy").runs
  n:sync_concurrently(4, "pg.copy")
  check(view("copy").runs - before == 2, "four concurrent sync() calls made exactly two materialization passes")
end)

step("restart the node", function()
  n:restart()
  local first
  await(function()
    local v = view("live")
    first = v.last_run
    return first ~= nil and v.streaming
  end, 20000, "the realtime view finished its first run after the restart")
  check(first.pulled == 0, "the realtime view resumed from its slot without a new snapshot")
  await(function() local v = view("live"); return v.state == "running" and v.streaming end, 20000,
        "the realtime view follows its stream again and reports running")
  pg:sql("INSERT INTO items VALUES (1003, 'after restart', 1, NULL)")
  await(function() return value_of("live", 1003, "title") == "after restart" end, 10000,
        "the realtime view follows the stream after a node restart")
  local rows = pg:sql("SELECT count(*) FROM items").rows[1][1]
  check(tostring(count("live")) == rows, "the realtime view holds exactly the source's rows")
end)

step("restart PostgreSQL mid-stream", function()
  pg:restart()
  pg:sql("INSERT INTO items VALUES (1004, 'after pg restart', 1, NULL)")
  await(function() return value_of("live", 1004, "title") == "after pg restart" end, 30000,
        "the realtime view recovered by itself after PostgreSQL restarted")
  check(view("live").last_run.pulled == 0,
        "it followed on from its slot without a new snapshot",
        "pulled " .. tostring(view("live").last_run.pulled))
  local rows = pg:sql("SELECT count(*) FROM items").rows[1][1]
  check(tostring(count("live")) == rows, "nothing lost or duplicated across the restart")
end)

step("10,000 mixed changes across a PostgreSQL restart", function()
  local function churn(seed)
    -- About 2,100 changes in 100 transactions: inserts, updates and deletes
    -- (DISTINCT: an upsert may not name one id twice, and 9 draws keep the
    -- total over 10,000 when two of them collide).
    pg:sql(string.format([[
      DO $$ DECLARE i int; BEGIN
        PERFORM setseed(%f);
        FOR i IN 1..100 LOOP
          INSERT INTO items SELECT DISTINCT 100000 + (random() * 50000)::int, 'churn', 1, NULL
            FROM generate_series(1, 9) ON CONFLICT (id) DO UPDATE SET title = 'upserted';
          UPDATE items SET title = 'touched ' || i, price = price + 1
            WHERE id IN (SELECT id FROM items ORDER BY random() LIMIT 8);
          DELETE FROM items WHERE id IN (SELECT id FROM items ORDER BY random() LIMIT 4);
          COMMIT;
        END LOOP;
      END $$]], seed))
  end
  for round = 1, 5 do
    churn(round / 10)
    if round == 3 then pg:restart() end
  end
  local source = {}
  for _, r in ipairs(pg:sql("SELECT id, title, price FROM items").rows) do
    source[r[1]] = r[2] .. "|" .. r[3]
  end
  await(function()
    local rows = n:rows("pg.live")
    local seen = 0
    for _, r in ipairs(rows) do
      if source[tostring(r.id)] ~= (r.title .. "|" .. r.price) then return false end
      seen = seen + 1
    end
    local expected = 0
    for _ in pairs(source) do expected = expected + 1 end
    return seen == expected
  end, 60000, "the realtime view equals the source row by row after 10,000 changes and a restart")
end)

step("bad input", function()
  n:shutdown()
  local bad = config()
  bad.views = { { namespace = "pg", name = "nope", persistence = "materialized", remote = "pg",
                  source = "public.nope" } }
  local m = node.start("badviews", bad)
  local r = m:sync("pg.nope")[1]
  check(r.state == "failed", "a view of a table that does not exist fails")
  check(string.find(r.error or "", "does not exist") ~= nil, "and says the table does not exist", r.error)
  m:shutdown()

  local cases = {
    { "a filter on an unknown column", { conninfo = pg:conninfo() },
      { column = "colour", op = "=", value = "red" }, "colour" },
    { "wrong credentials", { conninfo = pg:conninfo():gsub("user=postgres", "user=nobody") }, nil,
      "nobody" },
    { "an unreachable host", { conninfo = "host=127.0.0.1 port=1 dbname=postgres user=postgres" },
      nil, "127.0.0.1" },
  }
  for i, c in ipairs(cases) do
    local cfg = config()
    cfg.remotes = { { name = "pg", kind = "postgres", conninfo = c[2].conninfo },
                    { name = "mem", kind = "memory",
                      tables = { { name = "t", columns = { { name = "id", type = "integer", key = true } },
                                   rows = { { 1 } } } } } }
    cfg.views = { { namespace = "pg", name = "bad", persistence = "materialized", remote = "pg",
                    source = "public.items", filters = c[3] and { c[3] } or nil },
                  { namespace = "mem", name = "ok", persistence = "materialized", remote = "mem",
                    source = "t" } }
    local b = node.start("bad" .. i, cfg)
    local res = b:sync("*")
    check(res[1].state == "failed" and string.find(res[1].error or "", c[4], 1, true) ~= nil,
          c[1] .. " fails the view with a sentence", res[1].error)
    check(res[2].state == "synced", c[1] .. " leaves other views unaffected")
    check(b:running(), c[1] .. " leaves the node running")
    b:shutdown()
  end
end)
