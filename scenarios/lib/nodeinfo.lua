-- What scenarios ask of a node: a peer link's record, a table's row count,
-- its recent events of one type.
local nodeinfo = {}

-- The record of n's link to `peer` (ctl links).
function nodeinfo.link(n, peer)
  for _, l in ipairs(n:links()) do
    if l.peer == peer then return l end
  end
  error("node " .. n:name() .. " has no link to " .. peer)
end

-- The rows n holds in `table`.
function nodeinfo.count(n, table)
  return #n:query(table).rows
end

-- n's recent events of type `kind`.
function nodeinfo.events_of(n, kind)
  local out = {}
  for _, e in ipairs(n:events()) do
    if e.type == kind then out[#out + 1] = e end
  end
  return out
end

return nodeinfo
