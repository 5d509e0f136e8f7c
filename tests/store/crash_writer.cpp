// The child process of the store crash test (crash_test.cpp).
//
//   store_crash_writer DIR FIRST_BATCH DURABILITY
//
// Opens the store at DIR as node "crash-node" with DURABILITY ("fsync" or
// "buffered"), creates table crash.items when missing, then applies batches
// FIRST_BATCH, FIRST_BATCH + 1, ... until it is killed. Batch i is one
// store::batch of rows_in_batch(i) inserts into crash.items plus the cursor
// ("crash", "i"). Only after apply() of batch i returned ok does the writer
// write the line "i\n" to stdout, in one unbuffered write(2): a line on
// stdout is an acknowledgement that batch i is durable.
//
// Exit status 2, with the reason on stderr, on any error; it never exits 0.

#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <system_error>

#include "store/store.hpp"
#include "crash_workload.hpp"

namespace st = syncmesh::store;

namespace {

constexpr const char* table_name = "crash.items";
constexpr const char* cursor_source = "crash";
constexpr const char* node_id = "crash-node";

using st::crash::payload_of;
using st::crash::rows_in_batch;

st::schema items_schema() {
  st::schema s;
  s.table = table_name;
  s.columns = {{"batch", st::value_kind::integer, "", false},
               {"item", st::value_kind::integer, "", false},
               {"payload", st::value_kind::text, "", true}};
  s.primary_key = {0, 1};
  return s;
}

st::batch make_batch(std::uint64_t b) {
  st::batch out;
  const auto rows = rows_in_batch(b);
  out.changes.reserve(rows);
  for (std::uint64_t j = 0; j < rows; ++j) {
    st::change c;
    c.table = table_name;
    c.op = st::change_op::insert;
    c.key = {st::value::integer(static_cast<std::int64_t>(b)),
             st::value::integer(static_cast<std::int64_t>(j))};
    c.new_row = st::row{c.key[0], c.key[1], st::value::text(payload_of(b, j))};
    out.changes.push_back(std::move(c));
  }
  out.cursors.emplace_back(cursor_source, std::to_string(b));
  return out;
}

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "store_crash_writer: %s\n", what.c_str());
  std::fflush(stderr);
  std::_Exit(2);
}

// Writes all of `line` to fd 1, bypassing stdio buffers.
void write_line(const std::string& line) {
  std::size_t done = 0;
  while (done < line.size()) {
    auto n = ::write(STDOUT_FILENO, line.data() + done, line.size() - done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      fail("could not write an acknowledgement to stdout: "
           + std::system_category().message(errno));
    done += static_cast<std::size_t>(n);
  }
}

} // namespace

int main(int argc, char** argv) {
  if (argc != 4)
    fail("usage: store_crash_writer DIR FIRST_BATCH fsync|buffered");
  const std::string dir = argv[1];
  const std::string first_arg = argv[2];
  std::uint64_t first = 0;
  auto [end, ec] = std::from_chars(first_arg.data(), first_arg.data() + first_arg.size(), first);
  if (ec != std::errc{} || end != first_arg.data() + first_arg.size())
    fail("FIRST_BATCH '" + first_arg + "' is not a non-negative integer");
  auto durability = st::parse_durability(argv[3]);
  if (!durability)
    fail(durability.error().to_string());

  st::options opts;
  opts.path = dir;
  opts.node_id = node_id;
  opts.durability = *durability;
  auto opened = st::store::open(opts);
  if (!opened)
    fail(opened.error().to_string());
  auto& db = **opened;

  auto existing = db.table(table_name);
  if (!existing)
    fail(existing.error().to_string());
  if (!*existing)
    if (auto s = db.create_table(items_schema()); !s)
      fail(s.to_string());

  for (auto b = first;; ++b) {
    auto applied = db.apply(make_batch(b));
    if (!applied)
      fail(applied.error().to_string());
    write_line(std::to_string(b) + "\n");
  }
}
