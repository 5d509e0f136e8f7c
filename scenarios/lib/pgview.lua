-- What the PostgreSQL scenarios ask of a view's status record.
local pgview = {}

-- The status record of view `name` ("ns.name") on node n.
function pgview.status(n, name)
  for _, v in ipairs(n:status(name)) do return v end
  error("no status for " .. name)
end

-- The view follows its change stream, and its last run reached the remote
-- (`streaming` is set as a run asks to follow, before the answer).
function pgview.ready(n, name)
  local v = pgview.status(n, name)
  return v.state == "running" and v.streaming and v.remote_up
end

-- A sync view's queue is empty and none of its rows is staged.
function pgview.drained(n, name)
  local v = pgview.status(n, name)
  return v.outbox.pending == 0 and v.outbox.staged_rows == 0
end

return pgview
