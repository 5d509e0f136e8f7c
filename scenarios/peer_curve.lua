--- Peer links with CURVE keys: a node whose key is on the server's allow-list syncs; one whose key is not cannot connect.
package.path = debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "lib/?.lua;" .. package.path
local nodeinfo = require("nodeinfo")

local TABLE = "app.notes"

local function config(keys, allow, links)
  return {
    tables = { { name = TABLE,
                 columns = { { name = "id", type = "integer", key = true },
                             { name = "body", type = "text" } } } },
    peer = { listen = "tcp://127.0.0.1:0", heartbeat_ms = 200, dead_after_ms = 1000,
             retransmit_ms = 300, reconnect_initial_ms = 50, reconnect_max_ms = 500,
             secret_key_file = keys.secret, public_key_file = keys.public, allow = allow },
    links = links,
  }
end

local function keys(name)
  local secret, public, z85 = keygen(name)
  return { secret = secret, public = public, z85 = z85 }
end

local link = nodeinfo.link

local function log_says(n, text)
  local f = io.open(n:log(), "r")
  if not f then return false end
  local all = f:read("a")
  f:close()
  return all:find(text, 1, true) ~= nil
end

local function count(n) return nodeinfo.count(n, TABLE) end

local server_keys, good_keys, bad_keys = keys("server"), keys("good"), keys("bad")
local server, good, bad

step("a server admits the key on its allow-list", function()
  -- The allow-list has an entry for "bad" too, with another key: the node
  -- id alone does not get anyone in.
  local stranger = keys("stranger")
  server = node.start("server", config(server_keys,
    { { node = "good", key = good_keys.z85 }, { node = "bad", key = stranger.z85 } },
    { { peer = "good" }, { peer = "bad" } }))
  local ep = server:peer_endpoint()
  good = node.start("good", config(good_keys, nil,
    { { peer = "server", endpoint = ep, server_key = server_keys.z85 } }))
  await(function() return link(server, "good").state == "live" end, 15000,
        "the link from good is live (CURVE, key on the allow-list)")
  good:exec(TABLE, { upsert = { { id = 1, body = "over CURVE" } } })
  await(function() return count(server) == 1 end, 15000, "good's write reached the server")
end)

step("a node whose key is not on the allow-list cannot connect", function()
  bad = node.start("bad", config(bad_keys, nil,
    { { peer = "server", endpoint = server:peer_endpoint(), server_key = server_keys.z85 } }))
  await(function() return log_says(server, "refused a client") end, 15000,
        "the server logged the refused key")
  check(log_says(server, bad_keys.z85), "the refusal names bad's key")
  check(link(server, "bad").state ~= "live", "the server has no live link to bad")
  check(link(bad, "server").state ~= "live", "bad has no live link to the server")
  check_equal(count(bad), 0, "nothing reached bad")
  server:exec(TABLE, { upsert = { { id = 2, body = "for good only" } } })
  await(function() return count(good) == 2 end, 15000, "the server still syncs with good")
  check_equal(count(bad), 0, "and bad still holds nothing")
end)

for _, n in ipairs({ bad, good, server }) do n:shutdown() end
