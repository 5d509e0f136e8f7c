--- Sync views of tables PostgreSQL shapes itself: an identity key, a generated column, a column added upstream.
package.path = debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "lib/?.lua;" .. package.path
local pgview = require("pgview")
local pg = pgview.start_postgres()
if not pg then return end
pg:sql([[CREATE TABLE items (id bigint PRIMARY KEY, title text); INSERT INTO items VALUES (1, 'one');
         CREATE TABLE notes (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, body text,
                             len integer GENERATED ALWAYS AS (length(body)) STORED);
         INSERT INTO notes (body) VALUES ('first');
         CREATE TABLE tags (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), name text)]])
local n = node.start("pgschema", {
  retry = { initial_ms = 100, max_ms = 500, jitter = 0.1 },
  remotes = { { name = "pg", kind = "postgres", conninfo = pg:conninfo() } },
  views = { { namespace = "pg", name = "items", persistence = "sync", remote = "pg",
              source = "public.items" },
            { namespace = "pg", name = "notes", persistence = "sync", remote = "pg",
              source = "public.notes" },
            { namespace = "pg", name = "tags", persistence = "sync", remote = "pg",
              source = "public.tags", client_key = "uuid" } } })
local function ready() return pgview.ready(n, "pg.items") end
local function drained() return pgview.drained(n, "pg.items") end
local function remote(id)
  local rows = pg:sql("SELECT title, coalesce(qty::text, 'NULL') FROM items WHERE id = " .. id).rows
  return rows[1] and (rows[1][1] .. "/" .. rows[1][2])
end

step("a write before the change", function()
  await(ready, 20000, "the sync view follows its stream")
  n:exec("pg.items", { upsert = { { id = 2, title = "two" } } })
  await(drained, 10000, "the write was pushed")
  check_equal(pg:sql("SELECT title FROM items WHERE id = 2").rows[1][1], "two", "PostgreSQL holds the write")
end)

step("a column added upstream, the view synced afresh", function()
  pg:sql("ALTER TABLE items ADD COLUMN qty integer; INSERT INTO items VALUES (3, 'three', 3)")
  n:stop("pg.items")
  n:forget("pg.items")
  n:resume("pg.items")
  await(ready, 20000, "the view follows its stream again")
  local qty
  for _, r in ipairs(n:rows("pg.items")) do if r.id == 3 then qty = r.qty end end
  check_equal(qty, 3, "the new snapshot holds the new column")
end)

step("a write after the change pushes the new column", function()
  n:exec("pg.items", { upsert = { { id = 4, title = "four", qty = 4 }, { id = 1, title = "one", qty = 1 } } })
  await(drained, 10000, "the writes were pushed")
  check_equal(remote(4), "four/4", "the inserted row reached PostgreSQL with its new column")
  check_equal(remote(1), "one/1", "the updated row reached PostgreSQL with its new column")
end)

step("an identity key (GENERATED ALWAYS) and a generated column", function()
  await(function() return pgview.ready(n, "pg.notes") end, 20000, "the notes view follows its stream")
  -- leased ids; two inserts in one batch go upstream as one COPY
  n:exec("pg.notes", { upsert = { { body = "second" }, { body = "third" } } })
  n:exec("pg.notes", { upsert = { { id = 1, body = "premier" } } })
  await(function() return pgview.drained(n, "pg.notes") end, 10000, "both writes were pushed")
  local v = pgview.status(n, "pg.notes")
  check_equal(v.outbox.failed, 0, "PostgreSQL refused none of the writes")
  local rows = pg:sql("SELECT id::text || '=' || body || '/' || len FROM notes ORDER BY id").rows
  local got = {}
  for _, r in ipairs(rows) do got[#got + 1] = r[1] end
  check_equal(table.concat(got, " "), "1=premier/7 2=second/6 3=third/5",
              "the inserts took their leased ids and PostgreSQL computed the generated column")
end)

step("client_key = uuid: inserts without a key, offline", function()
  await(function() return pgview.ready(n, "pg.tags") end, 20000, "the tags view follows its stream")
  pg:stop()
  n:exec("pg.tags", { upsert = { { name = "red" }, { name = "blue" } } })
  local made = {}
  for _, r in ipairs(n:rows("pg.tags")) do made[#made + 1] = r.id .. "=" .. r.name end
  table.sort(made)
  check_equal(#made, 2, "both offline inserts were taken, each with a key made here")
  check(made[1]:match("^%x+%-%x+%-7%x+%-[89ab]%x+%-%x+=") ~= nil, "the keys are UUIDs of version 7", made[1])
  pg:start()
  await(function() return pgview.drained(n, "pg.tags") end, 30000, "the queue drained once PostgreSQL was back")
  local remote = {}
  for _, r in ipairs(pg:sql("SELECT id::text || '=' || name FROM tags").rows) do remote[#remote + 1] = r[1] end
  table.sort(remote)
  check_equal(table.concat(remote, " "), table.concat(made, " "), "PostgreSQL holds the rows under the same keys")
end)
