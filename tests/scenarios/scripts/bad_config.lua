--- Meta-test: a bad config table is refused with the node's own sentence.
node.start("bad", { remotes = {}, views = {}, retyr = { initial_ms = 5 } })
