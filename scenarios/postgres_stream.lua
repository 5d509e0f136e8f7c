--- A realtime view's filters applied to the PostgreSQL change stream: rows updated into the filter enter, out of it leave (numbers, text, timestamps, dates).
package.path = debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "lib/?.lua;" .. package.path
local pgview = require("pgview")
local pg = pgview.start_postgres()
if not pg then return end
-- note is stored out of line uncompressed, so a long note is TOASTed and an
-- update that leaves it alone does not carry it.
pg:sql([[CREATE TABLE goods (id bigint PRIMARY KEY, kind text, price numeric(8,2), note text);
         ALTER TABLE goods ALTER COLUMN note SET STORAGE EXTERNAL;
         INSERT INTO goods SELECT g, CASE WHEN g % 2 = 0 THEN 'a' ELSE 'c' END, g, NULL
           FROM generate_series(1, 20) g]])
say("Started a throwaway PostgreSQL with table goods (20 rows; even ids are kind 'a', odd ones 'c').")
-- Dates and times print in the session's DateStyle and TimeZone; the
-- database's defaults here are neither ISO nor UTC, so the stream's filters
-- must read offsets (and the connector must ask for ISO text).
pg:sql([[CREATE TABLE events (id bigint PRIMARY KEY, at timestamptz, day date);
         INSERT INTO events VALUES
           (1, '2023-12-31 23:00:00-02', '2024-01-01'), (2, '2024-01-15 12:00:00+00', '2024-01-15'),
           (3, '2024-02-01 00:00:00+00', '2024-02-01'), (4, '2023-12-31 23:59:59.999999+00', '2023-12-31'),
           (5, '2024-01-10 00:00:00+00', '2025-01-01');
         DO $$ BEGIN
           EXECUTE format('ALTER DATABASE %I SET TimeZone = %L', current_database(), 'Asia/Kolkata');
           EXECUTE format('ALTER DATABASE %I SET DateStyle = %L', current_database(), 'SQL, DMY');
         END $$]])
local in_window = "at >= '2024-01-01 00:00:00+00' AND at < '2024-02-01 00:00:00+00' AND day <= '2024-12-31'"

local function config()
  return {
    retry = { initial_ms = 100, max_ms = 1000, jitter = 0.1 },
    remotes = { { name = "pg", kind = "postgres", conninfo = pg:conninfo() } },
    views = {
      { namespace = "pg", name = "cheap", persistence = "realtime", remote = "pg",
        source = "public.goods",
        filters = { { column = "price", op = "<", value = 10 },
                    { column = "kind", op = "in", values = { "a", "b" } } } },
      { namespace = "pg", name = "window", persistence = "realtime", remote = "pg",
        source = "public.events",
        filters = { { column = "at", op = ">=", value = "2024-01-01 00:00:00+00" },
                    { column = "at", op = "<", value = "2024-02-01T00:00:00Z" },
                    { column = "day", op = "<=", value = "2024-12-31" } } } } }
end

local n = node.start("pgstream", config())
local function view(name)
  for _, v in ipairs(n:status("pg." .. name)) do return v end
end
local function row_of(name, id)
  for _, r in ipairs(n:rows("pg." .. name)) do
    if r.id == id then return r end
  end
end
local function ids(name)
  local out = {}
  for _, r in ipairs(n:rows("pg." .. name)) do out[#out + 1] = r.id end
  table.sort(out)
  return table.concat(out, ",")
end
local function source_ids(where, tbl)
  local out = {}
  for _, r in ipairs(pg:sql("SELECT id FROM " .. (tbl or "goods") .. " WHERE " .. where .. " ORDER BY id").rows) do
    out[#out + 1] = r[1]
  end
  return table.concat(out, ",")
end
local function errors_mentioning(text)
  local k = 0
  for _, e in ipairs(n:events()) do
    if e.type == "error" and e.view == "pg.cheap" and string.find(e.message or "", text, 1, true) then
      k = k + 1
    end
  end
  return k
end
local selected = "price < 10 AND kind IN ('a', 'b')"

step("filters narrow the snapshot", function()
  await(function() local v = view("cheap"); return v.state == "running" and v.streaming end, 20000,
        "the filtered realtime view bootstrapped and follows its stream")
  check_equal(ids("cheap"), "2,4,6,8", "the snapshot holds only price < 10 and kind in (a, b)")
end)

step("filters apply to the stream", function()
  pg:sql("INSERT INTO goods VALUES (21, 'a', 5, 'in'), (22, 'a', 50, 'too dear'), (23, 'z', 1, 'wrong kind')")
  await(function() return row_of("cheap", 21) ~= nil end, 10000, "an INSERT inside the filter enters")
  check(row_of("cheap", 22) == nil and row_of("cheap", 23) == nil, "INSERTs outside the filter are ignored")
  pg:sql("UPDATE goods SET price = 20 WHERE id = 2")
  await(function() return row_of("cheap", 2) == nil end, 10000, "an UPDATE that moves a row out of the filter deletes it locally")
  pg:sql("UPDATE goods SET price = 3, note = 'now cheap' WHERE id = 12")
  await(function() return row_of("cheap", 12) ~= nil end, 10000, "an UPDATE that moves a row into the filter inserts it")
  local r = row_of("cheap", 12)
  check(r.note == "now cheap" and r.kind == "a" and r.price == "3.00", "with the whole new row", r.note)
  pg:sql("UPDATE goods SET kind = 'b' WHERE id = 1")
  await(function() return row_of("cheap", 1) ~= nil end, 10000, "a change of another filtered column brings a row in too")
  pg:sql("UPDATE goods SET id = 30 WHERE id = 6")
  await(function() return row_of("cheap", 30) ~= nil end, 10000, "an UPDATE of the key brings the row in under its new key")
  check(row_of("cheap", 6) == nil, "and removes it under the old one")
  pg:sql("DELETE FROM goods WHERE id IN (4, 22)")
  await(function() return row_of("cheap", 4) == nil end, 10000, "a DELETE of a held row removes it")
  check(view("cheap").state == "running", "a DELETE of a row the view does not hold is harmless")
  check_equal(ids("cheap"), source_ids(selected), "the view holds exactly the source's selected rows")
end)

step("filters on timestamptz and date columns apply to the stream", function()
  await(function() local v = view("window"); return v.state == "running" and v.streaming end, 20000,
        "the realtime view filtered on a time range bootstrapped and follows its stream")
  check_equal(ids("window"), "1,2", "the snapshot holds the rows inside the range (an offset of -02 counted)")
  check_equal(row_of("window", 2).at, "2024-01-15 17:30:00+05:30",
              "times are held as ISO text in the session's TimeZone, whatever the database's DateStyle")
  pg:sql("UPDATE events SET at = '2024-01-20 00:00:00+00' WHERE id = 3")
  await(function() return row_of("window", 3) ~= nil end, 10000, "a row updated into the time range enters")
  pg:sql("UPDATE events SET at = '2024-02-01 00:00:00+00' WHERE id = 1")
  await(function() return row_of("window", 1) == nil end, 10000, "a row updated out of the time range leaves")
  pg:sql("UPDATE events SET day = '2024-06-01' WHERE id = 5")
  await(function() return row_of("window", 5) ~= nil end, 10000, "a row updated into the date filter enters")
  pg:sql([[INSERT INTO events VALUES (6, '2024-01-31 23:59:59.999999+00', '2024-01-31'),
                                     (7, 'infinity', '2024-01-31'), (8, '2024-01-31 18:00:00-06', '2024-01-31')]])
  await(function() return row_of("window", 6) ~= nil end, 10000, "an INSERT a microsecond inside the range enters")
  check_equal(row_of("window", 6).at, "2024-02-01 05:29:59.999999+05:30", "the stream's times are ISO text too")
  check(row_of("window", 7) == nil and row_of("window", 8) == nil,
        "INSERTs at infinity and past the range's end (-06 is 00:00 UTC) are ignored")
  check_equal(ids("window"), source_ids(in_window, "events"),
              "the view holds exactly the source's rows in the range")
end)

step("unchanged TOAST values and REPLICA IDENTITY", function()
  local big = string.rep("toast ", 5000)
  -- Row 14 is outside the filter; an UPDATE that brings it in leaves its
  -- TOASTed note unchanged, so the stream does not carry the note.
  pg:sql("UPDATE goods SET note = '" .. big .. "' WHERE id = 14")
  pg:sql("UPDATE goods SET price = 1 WHERE id = 14")
  await(function() local r = row_of("cheap", 14); return r ~= nil and r.note == big end, 20000,
        "the row enters with its unchanged TOASTed value")
  check(errors_mentioning("REPLICA IDENTITY FULL") >= 1,
        "without REPLICA IDENTITY FULL the view said why it copied the table again")
  await(function() local v = view("cheap"); return v.state == "running" and v.streaming end, 20000,
        "and follows its stream again")
  pg:sql("ALTER TABLE goods REPLICA IDENTITY FULL")
  local before = errors_mentioning("REPLICA IDENTITY FULL")
  local runs = view("cheap").runs
  pg:sql("UPDATE goods SET note = '" .. big .. "' WHERE id = 16")
  pg:sql("UPDATE goods SET price = 2 WHERE id = 16")
  await(function() local r = row_of("cheap", 16); return r ~= nil and r.note == big end, 10000,
        "with REPLICA IDENTITY FULL the old row carries the TOASTed value")
  check(errors_mentioning("REPLICA IDENTITY FULL") == before and view("cheap").runs == runs,
        "and the stream needed no new copy")
  pg:sql("UPDATE goods SET price = price + 100 WHERE id = 16")
  await(function() return row_of("cheap", 16) == nil end, 10000, "it leaves the filter again")
  check_equal(ids("cheap"), source_ids(selected), "the view holds exactly the source's selected rows")
end)

step("a filter the stream cannot evaluate is a sentence", function()
  pg:sql("CREATE TABLE spans (id bigint PRIMARY KEY, span interval)")
  local cfg = config()
  cfg.views[3] = { namespace = "pg", name = "recent", persistence = "realtime", remote = "pg",
                   source = "public.spans", filters = { { column = "span", op = ">", value = "1 day" } } }
  n:shutdown()
  local m = node.start("pgstream2", cfg)
  local r = m:sync("pg.recent")[1]
  check(r.state == "failed" and string.find(r.error or "", "make the view materialized", 1, true) ~= nil,
        "a realtime filter on an interval column fails the view and says what to do", r.error)
  await(function() local v = m:status("pg.cheap")[1]; return v.state == "running" and v.streaming end, 20000,
        "the node's other views keep streaming")
  check(m:running(), "the node keeps running")
end)
