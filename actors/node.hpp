#pragma once

#include <memory>
#include <string>

#include "actors/node_config.hpp"
#include "store/status.hpp"

namespace syncmesh::store {
class store;
}

namespace syncmesh::actors {

/// One syncmesh node: its store, actor system, supervisor tree, control
/// socket and event bus, wired from a config.
///
/// start() returns once the node serves its control socket; the bound
/// endpoints are in <data_dir>/node.json as well. stop() (or destruction) is
/// orderly: the control socket closes, views stop, connectors close, the
/// store actor drains, the store closes.
class node {
public:
  /// Errors: invalid_argument/io_error with a sentence, e.g. when the data
  /// directory is in use by another node process, or an endpoint cannot be
  /// bound.
  static store::result<std::unique_ptr<node>> start(const node_config& cfg);

  ~node();
  node(const node&) = delete;
  node& operator=(const node&) = delete;

  const std::string& control_endpoint() const;
  const std::string& events_endpoint() const;

  /// The node's store, for a program that embeds the node: reads are
  /// thread-safe and change_follower follows its change log. Writes belong
  /// to the node's store actor; do not apply() through this handle.
  std::shared_ptr<store::store> store() const;

  /// Orderly shutdown; idempotent.
  void stop();

private:
  struct impl;
  explicit node(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

} // namespace syncmesh::actors
