--- Nodes sync a table with each other over real ZeroMQ on loopback: a hub and two spokes converge through a partition and a SIGKILL of the hub; a push-only link and an untrusted origin are refused with nacks.
package.path = debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "lib/?.lua;" .. package.path
local nodeinfo = require("nodeinfo")
--
-- hub listens; spoke "a" dials it directly, spoke "b" through a fault proxy
-- (so its link can be partitioned and cut). A fourth node, "c", joins at the
-- end: the hub takes nothing from it (the hub's link to c is mode push), and
-- it reaches the hub's world only through "a", whose changes the hub takes
-- only when they were made on hub, a or b (trusted_origins).

local TABLE = "app.notes"

local function config(links)
  return {
    durability = "fsync",
    tables = { { name = TABLE,
                 columns = { { name = "id", type = "integer", key = true },
                             { name = "body", type = "text" },
                             { name = "author", type = "text" } } } },
    -- Short protocol timers so a dead link is noticed within a second.
    peer = { listen = "tcp://127.0.0.1:0", heartbeat_ms = 200, dead_after_ms = 1000,
             retransmit_ms = 300, reconnect_initial_ms = 50, reconnect_max_ms = 500 },
    links = links,
  }
end

local function write(n, id, body)
  n:exec(TABLE, { upsert = { { id = id, body = body, author = n:name() } } })
end

local function ids(n)
  local out = {}
  for _, r in ipairs(n:query(TABLE).rows) do out[r[1]] = true end
  return out
end

local function has(n, id) return ids(n)[id] == true end

local function count(n) return nodeinfo.count(n, TABLE) end

local link = nodeinfo.link

-- Every node in `nodes` holds the same rows: the same count, then equal
-- digests (byte-identical tables).
local function converged(nodes)
  local c = count(nodes[1])
  for i = 2, #nodes do
    if count(nodes[i]) ~= c then return false end
  end
  local d = nodes[1]:digest(TABLE)
  for i = 2, #nodes do
    if nodes[i]:digest(TABLE) ~= d then return false end
  end
  return true
end

local hub, a, b, proxy, hub_endpoint

step("start a hub and two spokes", function()
  hub = node.start("hub", config({
    { peer = "a", trusted_origins = { "hub", "a", "b" } },
    { peer = "b" },
    { peer = "c", mode = "push" } }))
  hub_endpoint = hub:peer_endpoint()
  local port = tonumber(hub_endpoint:match(":(%d+)$"))
  proxy = fault.proxy("127.0.0.1", port)
  a = node.start("a", config({ { peer = "hub", endpoint = hub_endpoint }, { peer = "c" } }))
  b = node.start("b", config({
    { peer = "hub", endpoint = "tcp://127.0.0.1:" .. proxy:port() } }))
  say("hub listens on " .. hub_endpoint .. "; a dials it, b dials it through a fault proxy")
  await(function()
    return link(hub, "a").state == "live" and link(hub, "b").state == "live"
  end, 15000, "the hub's links to a and b are live")
end)

step("writes on every node reach every other", function()
  write(hub, 1, "from the hub")
  write(a, 2, "from a")
  write(b, 3, "from b")
  await(function() return count(hub) == 3 and count(a) == 3 and count(b) == 3 end, 15000,
        "every node holds the three rows")
  await(function() return converged({ hub, a, b }) end, 5000, "the three digests are equal")
  check(link(hub, "a").applied >= 1 and link(hub, "b").applied >= 1,
        "the hub applied changes from both spokes")
end)

step("a write on a reads on b as soon as b's wait for its stamp answers", function()
  -- exec answers with the write's origin and stamp; b holds it once the
  -- hub has relayed it, and b's wait says when, so the read needs no polling.
  local w = a:exec(TABLE, { upsert = { { id = 2, body = "from a, edited", author = "a" } } })
  check_equal(w.origin, "a", "exec names the node that made the write")
  local held = b:wait(w.origin, w.hlc)
  check(held.held ~= nil, "b says what it holds of a")
  local body
  for _, r in ipairs(b:query(TABLE).rows) do
    if r[1] == 2 then body = r[2] end
  end
  check_equal(body, "from a, edited", "b reads the edit at once")
  local late, why = b:wait("a", "99999999999999.0", 200)
  check(late == nil and why:find("not up to 99999999999999.0", 1, true) ~= nil,
        "a wait for a stamp a never made is refused in time, saying what b holds: " .. tostring(why))
end)

step("partition spoke b, write on both sides, heal", function()
  proxy:partition()
  proxy:cut()
  await(function() return link(hub, "b").state == "down" end, 15000,
        "the hub sees its link to b go down")
  write(b, 10, "b during the partition")
  write(hub, 11, "hub during the partition")
  write(a, 12, "a during the partition")
  await(function() return has(a, 11) and has(hub, 12) end, 15000,
        "hub and a still sync with each other")
  check(not has(b, 11) and not has(b, 12), "b, cut off, has not seen their writes")
  check(not has(hub, 10) and not has(a, 10), "nobody has seen b's write")
  proxy:heal()
  await(function() return converged({ hub, a, b }) and count(hub) == 6 end, 20000,
        "after the heal all three converged on six rows")
end)

step("SIGKILL the hub mid-sync, restart it", function()
  local acknowledged = {}
  -- b's side of the hub is slowed down so the hub is still sending to b
  -- when it dies.
  proxy:delay(20, 10)
  write(hub, 20, "hub before the crash")
  acknowledged[#acknowledged + 1] = 20
  for i = 100, 199 do
    write(a, i, "a, burst " .. i)
    acknowledged[#acknowledged + 1] = i
  end
  local at_kill = { hub = count(hub), b = count(b) }
  hub:kill()
  say("killed the hub holding " .. at_kill.hub .. " rows, b holding " .. at_kill.b .. " of 107")
  figure("hub_rows_at_kill", at_kill.hub)
  figure("b_rows_at_kill", at_kill.b)
  proxy:delay(0)
  check(not hub:running(), "the hub is gone (SIGKILL)")
  for i = 200, 219 do
    write(b, i, "b while the hub is down")
    acknowledged[#acknowledged + 1] = i
  end
  hub:start()
  check_equal(hub:peer_endpoint(), hub_endpoint, "the restarted hub listens on its old port")
  check(has(hub, 20), "the hub's acknowledged write survived the crash")
  await(function() return converged({ hub, a, b }) and count(hub) == 6 + 1 + 100 + 20 end, 30000,
        "after the restart all three converged")
  local missing = {}
  for _, n in ipairs({ hub, a, b }) do
    local held = ids(n)
    for _, id in ipairs(acknowledged) do
      if not held[id] then missing[#missing + 1] = n:name() .. ":" .. id end
    end
  end
  check_equal(#missing, 0, "no acknowledged write is missing anywhere ("
              .. table.concat(missing, ", ") .. ")")
end)

local c
step("a push-only link refuses the spoke's writes", function()
  c = node.start("c", config({
    { peer = "hub", endpoint = hub_endpoint },
    { peer = "a", endpoint = a:peer_endpoint() } }))
  await(function() return link(hub, "c").state == "live" and link(a, "c").state == "live" end,
        15000, "c's links to the hub and to a are live")
  write(c, 500, "from c")
  await(function() return link(hub, "c").nacked >= 1 end, 15000,
        "the hub nacked c's change on its push-only link")
  check(link(hub, "c").last_refusal:find("mode push", 1, true) ~= nil,
        "the refusal says why: " .. link(hub, "c").last_refusal)
  check(link(c, "hub").nacks_received >= 1, "c counted the nack it received")
  write(hub, 501, "hub to c")
  await(function() return has(c, 501) end, 15000, "the hub's own writes still reach c")
  check(not has(hub, 500), "the hub does not hold c's row")
end)

step("an untrusted origin's changes are nacked", function()
  await(function() return has(a, 500) end, 15000, "a, which trusts c, took c's row")
  await(function() return link(hub, "a").nacked >= 1 end, 15000,
        "the hub nacked c's change relayed by a")
  check(link(hub, "a").last_refusal:find("made on 'c'", 1, true) ~= nil,
        "the refusal names the untrusted origin: " .. link(hub, "a").last_refusal)
  check(not has(hub, 500) and not has(b, 500), "c's row reached neither the hub nor b")
  local topo = hub:topology()
  local edges = 0
  for _, e in ipairs(topo.edges) do
    if e.kind == "link" then edges = edges + 1 end
  end
  check_equal(edges, 3, "the hub's topology shows its three links")
end)

for _, n in ipairs({ c, b, a, hub }) do n:shutdown() end
