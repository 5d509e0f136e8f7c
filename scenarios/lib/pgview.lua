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

-- A throwaway PostgreSQL (postgres.start with `opts`), or nil after saying
-- why the scenario cannot run here; a scenario returns on nil.
function pgview.start_postgres(opts)
  if not postgres.available() then
    say("PostgreSQL is not installed here; this scenario needs the postgresql package (./dev installs it).")
    return nil
  end
  return postgres.start(opts)
end

-- A sync view's queue is empty and none of its rows is staged.
function pgview.drained(n, name)
  local v = pgview.status(n, name)
  return v.outbox.pending == 0 and v.outbox.staged_rows == 0
end

return pgview
