-- Shared set-up for the shipped scenarios: a node with an in-memory
-- "inventory" remote and three views of its items table, one per kind of
-- persistence the node runtime offers.
local shop = {}

function shop.config(extra)
  local cfg = {
    durability = "fsync",
    retry = { initial_ms = 100, max_ms = 1000, jitter = 0.1 },
    remotes = {
      { name = "inventory", kind = "memory",
        tables = {
          { name = "items",
            columns = { { name = "id", type = "integer", key = true },
                        { name = "title", type = "text" },
                        { name = "price", type = "numeric" } },
            rows = { { 1, "apple", "1.20" }, { 2, "pear", "0.80" }, { 3, "plum", "0.45" } } } } } },
    views = {
      { namespace = "shop", name = "items", persistence = "materialized",
        remote = "inventory", source = "items" },
      { namespace = "shop", name = "live", persistence = "realtime",
        remote = "inventory", source = "items" },
      { namespace = "shop", name = "cart", persistence = "sync",
        remote = "inventory", source = "items" } } }
  for k, v in pairs(extra or {}) do cfg[k] = v end
  return cfg
end

-- The status record of one view ("ns.name") on node n.
function shop.view(n, name)
  for _, v in ipairs(n:status(name)) do
    if v.namespace .. "." .. v.name == name then return v end
  end
  error("no status for " .. name)
end

-- The state a view rests in once its job is done: a materialized copy is
-- "synced"; realtime and sync views keep "running", following the stream.
function shop.settled(v)
  if v.persistence == "materialized" then return v.state == "synced" end
  return v.state == "running" and v.streaming
end

-- Whether view `name` on node n is settled.
function shop.ready(n, name)
  return shop.settled(shop.view(n, name))
end

function shop.count(n, view)
  return #n:query(view).rows
end

return shop
