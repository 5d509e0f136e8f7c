--- A compacted peer log over real ZeroMQ: a node that joins after the hub dropped its old log entries is brought up by a full sync, then follows by deltas.
package.path = debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "lib/?.lua;" .. package.path
local nodeinfo = require("nodeinfo")
--
-- The hub and spoke "a" keep their peer log for 200 ms only. Once the hub
-- has dropped entries (its `peer_log` event), a new node "late" dials the
-- hub: its empty version vector does not cover the hub's log floor, so the
-- hub sends it every row in sync_batch frames, then sync_complete, and
-- later writes as deltas.

local TABLE = "app.notes"

local function config(links)
  return {
    tables = { { name = TABLE,
                 columns = { { name = "id", type = "integer", key = true },
                             { name = "body", type = "text" } } } },
    peer = { listen = "tcp://127.0.0.1:0", heartbeat_ms = 200, dead_after_ms = 1000,
             retransmit_ms = 300, reconnect_initial_ms = 50, reconnect_max_ms = 500,
             log_retention_ms = 200, gc_interval_ms = 50 },
    links = links,
  }
end

local function count(n) return nodeinfo.count(n, TABLE) end

local link = nodeinfo.link

local events_of = nodeinfo.events_of

local hub, a, late

step("a hub and a spoke sync, then the hub compacts its log", function()
  hub = node.start("hub", config({ { peer = "a" }, { peer = "late" } }))
  a = node.start("a", config({ { peer = "hub", endpoint = hub:peer_endpoint() } }))
  for id = 1, 50 do
    a:exec(TABLE, { upsert = { { id = id, body = "first " .. id } } })
  end
  for id = 1, 50, 5 do
    a:exec(TABLE, { upsert = { { id = id, body = "second " .. id } } })
  end
  a:exec(TABLE, { delete = { { id = 2 } } })
  await(function() return count(hub) == 49 end, 15000, "the hub holds a's 49 rows")
  await(function() return #events_of(hub, "peer_log") > 0 end, 15000,
        "the hub dropped log entries older than 200 ms (a peer_log event)")
  local e = events_of(hub, "peer_log")[1]
  check(e.dropped > 0, "the event counts the entries dropped: " .. e.dropped)
  check(e.floor.a ~= nil, "the log's floor names origin a")
end)

step("a node that joins later gets a full sync, then deltas", function()
  -- late dials the hub through a proxy that holds the connection until
  -- this script follows late's events: a full sync done within
  -- milliseconds of its start would publish its event before the
  -- subscription (ZeroMQ PUB/SUB) reaches late. While held, late's link
  -- goes connecting and down again at each dead_after_ms; the first such
  -- event seen shows the subscription is there.
  local port = tonumber(hub:peer_endpoint():match(":(%d+)$"))
  local proxy = fault.proxy("127.0.0.1", port)
  proxy:partition()
  late = node.start("late", config({ { peer = "hub", endpoint = "tcp://127.0.0.1:" .. proxy:port() } }))
  await(function() return #events_of(late, "link") > 0 end, 15000,
        "late's events are followed (a link event while the proxy holds it)")
  proxy:heal()
  await(function() return count(late) == 49 end, 15000, "the late node holds the 49 rows")
  await(function() return late:digest(TABLE) == hub:digest(TABLE) end, 5000,
        "its table is byte-identical to the hub's")
  -- Counted once acknowledged (the hub) and once sync_complete is in (late):
  -- a round trip after the rows.
  await(function() return link(hub, "late").full_syncs_sent >= 1 end, 5000,
        "the hub sent it a full sync")
  await(function() return link(late, "hub").full_syncs_received >= 1 end, 5000,
        "the late node counted the full sync")
  await(function() return #events_of(late, "full_sync") >= 1 end, 5000,
        "and published a full_sync event")
  local sent = link(hub, "late").full_syncs_sent
  a:exec(TABLE, { upsert = { { id = 100, body = "after the join" } } })
  await(function() return count(late) == 50 end, 15000, "a's next write reaches the late node")
  check_equal(link(hub, "late").full_syncs_sent, sent, "by a delta, not another full sync")
end)

for _, n in ipairs({ late, a, hub }) do n:shutdown() end
