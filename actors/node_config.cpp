#include "actors/node_config.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <map>
#include <sstream>
#include <string_view>
#include <utility>

#include <toml++/toml.h>

#include "messaging/curve_keys.hpp"
#include "actors/conflict_resolver.hpp"
#include "actors/trust_policy.hpp"
#include "messaging/peer_protocol.hpp"
#include "store/key_codec.hpp"

namespace syncmesh::actors {
namespace {

using store::status;

/// The text of a config and the name its messages use. Positions are
/// toml++'s: lines and columns count from 1, columns in code points.
class source_doc {
public:
  source_doc(std::string_view text, std::string name) : text_(text), name_(std::move(name)) {
    line_starts_.push_back(0);
    for (std::size_t i = 0; i < text_.size(); ++i)
      if (text_[i] == '\n')
        line_starts_.push_back(i + 1);
  }

  const std::string& name() const { return name_; }

  /// invalid_argument "FILE:LINE:COL: <what>".
  status error_at(const toml::source_position& pos, const std::string& what) const {
    return status::invalid_argument(name_ + ":" + std::to_string(pos.line) + ":"
                                    + std::to_string(pos.column) + ": " + what);
  }

  /// The text a one-line region spans, exactly as written; empty when the
  /// region spans lines or is not in the text.
  std::string_view text_of(const toml::source_region& r) const {
    if (r.begin.line == 0 || r.begin.line != r.end.line || r.begin.line > line_starts_.size()
        || r.begin.column == 0 || r.end.column < r.begin.column)
      return {};
    std::size_t i = line_starts_[r.begin.line - 1];
    auto skip_code_points = [&](std::size_t n) {
      for (; n > 0 && i < text_.size() && text_[i] != '\n'; --n)
        for (++i; i < text_.size() && (static_cast<unsigned char>(text_[i]) & 0xC0) == 0x80; ++i) {
        }
    };
    skip_code_points(r.begin.column - 1);
    const std::size_t from = i;
    skip_code_points(r.end.column - r.begin.column);
    return text_.substr(from, i - from);
  }

private:
  std::string_view text_;
  std::string name_;
  std::vector<std::size_t> line_starts_;  // byte offset of each line
};

const char* a_type(toml::node_type t) {
  switch (t) {
    case toml::node_type::none: return "nothing";
    case toml::node_type::table: return "a table";
    case toml::node_type::array: return "an array";
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a float";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::date: return "a date";
    case toml::node_type::time: return "a time";
    case toml::node_type::date_time: return "a date-time";
  }
  return "an unknown kind of value";
}

/// `a string ("500")`: a node's type and, for a short scalar, its text.
std::string describe(const source_doc& doc, const toml::node& n) {
  std::string s = a_type(n.type());
  const auto text = doc.text_of(n.source());
  if (!n.is_table() && !n.is_array() && !text.empty() && text.size() <= 40)
    s.append(" (").append(text).append(")");
  return s;
}

/// "a, b, c".
std::string joined(const std::vector<std::string>& names) {
  std::string s;
  for (const auto& n : names)
    s += (s.empty() ? "" : ", ") + n;
  return s;
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j)
    row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

bool earlier(const toml::source_position& a, const toml::source_position& b) {
  return a.line != b.line ? a.line < b.line : a.column < b.column;
}

/// Reads one TOML table key by key. Every getter names a key the table may
/// hold; finish() reports the first key no getter named. The first error is
/// kept and later ones dropped, but getters keep naming their keys so the
/// list of known keys in an unknown-key message stays whole.
class table_reader {
public:
  /// `what` names the table in messages: "[retry]", "view 'shop.items'".
  table_reader(const source_doc& doc, const toml::table& table, std::string what)
    : doc_(doc), table_(table), what_(std::move(what)) {}

  const source_doc& doc() const { return doc_; }
  const std::string& what() const { return what_; }
  const toml::table& table() const { return table_; }
  bool failed() const { return !error_.is_ok(); }

  /// Keeps `st` as the error unless one is kept already; ok is ignored.
  void fail(status st) {
    if (error_.is_ok())
      error_ = std::move(st);
  }
  void fail_at(const toml::node& n, const std::string& what) {
    fail(doc_.error_at(n.source().begin, what));
  }

  /// Fails at `key`'s value (or at the table when absent) unless `ok`.
  void check(bool ok, std::string_view key, const std::string& what) {
    if (ok)
      return;
    const toml::node* n = table_.get(key);
    fail(doc_.error_at(n ? n->source().begin : table_.source().begin, what));
  }

  /// The node under `key`, or null when absent.
  const toml::node* take(std::string_view key) {
    if (std::find(known_.begin(), known_.end(), key) == known_.end())
      known_.emplace_back(key);
    return table_.get(key);
  }

  /// take(), failing when absent; `hint` is the line to add, e.g.
  /// `node_id = "node-a"`.
  const toml::node* take_required(std::string_view key, const std::string& hint) {
    const toml::node* n = take(key);
    if (!n)
      fail(doc_.error_at(table_.source().begin,
                         what_ + " has no '" + std::string(key) + "'; add " + hint));
    return n;
  }

  /// A string into `out` when present; null when absent or not a string.
  const toml::value<std::string>* string(std::string_view key, std::string& out) {
    return assign(typed<std::string>(take(key), key, "a string"), out);
  }

  /// A non-empty string into `out`; missing, wrong-typed or empty is an error.
  const toml::value<std::string>* required_string(std::string_view key, std::string& out,
                                                  const std::string& hint) {
    auto* v = typed<std::string>(take_required(key, hint), key, "a string");
    if (v && v->get().empty()) {
      fail_at(*v, "'" + std::string(key) + "' in " + what_ + " must not be empty; write " + hint);
      return nullptr;
    }
    return assign(v, out);
  }

  /// A string that must be one of `allowed`, into `out` when present.
  void one_of(std::string_view key, std::string& out, std::initializer_list<const char*> allowed) {
    std::string s;
    auto* v = string(key, s);
    if (!v)
      return;
    std::vector<std::string> names(allowed.begin(), allowed.end());
    if (std::find(names.begin(), names.end(), s) == names.end()) {
      fail_at(*v, "'" + std::string(key) + "' in " + what_ + " is '" + s
                    + "', which is unknown; use one of " + joined(names));
      return;
    }
    out = s;
  }

  const toml::value<bool>* boolean(std::string_view key, bool& out) {
    return assign(typed<bool>(take(key), key, "true or false"), out);
  }

  /// An integer in [min, max] into `out` when present.
  template <class Unsigned>
  const toml::value<std::int64_t>* integer(std::string_view key, Unsigned& out, std::int64_t min) {
    constexpr std::uint64_t max = std::min<std::uint64_t>(std::numeric_limits<Unsigned>::max(),
                                                          std::numeric_limits<std::int64_t>::max());
    auto* v = typed<std::int64_t>(take(key), key, "an integer");
    if (!v)
      return nullptr;
    const std::int64_t i = v->get();
    if (i < min) {
      fail_at(*v, "'" + std::string(key) + "' in " + what_ + " must be at least "
                    + std::to_string(min) + ", got " + std::to_string(i));
      return nullptr;
    }
    if (static_cast<std::uint64_t>(i) > max) {
      fail_at(*v, "'" + std::string(key) + "' in " + what_ + " must be at most "
                    + std::to_string(max) + ", got " + std::to_string(i));
      return nullptr;
    }
    out = static_cast<Unsigned>(i);
    return v;
  }

  /// A number in [0, 1) into `out` when present; integers are taken too.
  void fraction(std::string_view key, double& out) {
    const toml::node* n = take(key);
    if (!n)
      return;
    if (!n->is_number()) {
      fail_at(*n, "'" + std::string(key) + "' in " + what_ + " must be a number, got "
                    + describe(doc_, *n));
      return;
    }
    const double d = n->is_integer() ? static_cast<double>(n->as_integer()->get())
                                     : n->as_floating_point()->get();
    if (!(d >= 0.0 && d < 1.0)) {
      fail_at(*n, "'" + std::string(key) + "' in " + what_
                    + " must be at least 0 and below 1, got " + describe(doc_, *n));
      return;
    }
    out = d;
  }

  const toml::table* subtable(std::string_view key) {
    return typed<toml::table>(take(key), key, "a table");
  }

  /// An array whose entries are all tables; `form` says how to write one,
  /// e.g. "[[remotes]] sections". Null when absent or malformed.
  const toml::array* tables(std::string_view key, const std::string& form,
                            const std::string* required_hint = nullptr) {
    const toml::node* n = required_hint ? take_required(key, *required_hint) : take(key);
    auto* list = typed<toml::array>(n, key, "an array of tables (" + form + ")");
    if (!list)
      return nullptr;
    for (std::size_t i = 0; i < list->size(); ++i) {
      const toml::node& entry = *list->get(i);
      if (!entry.is_table()) {
        fail_at(entry, "entry " + std::to_string(i + 1) + " of '" + std::string(key) + "' in "
                         + what_ + " must be a table (" + form + "), got "
                         + describe(doc_, entry));
        return nullptr;
      }
    }
    return list;
  }

  const toml::array* array(std::string_view key, const std::string& expected) {
    return typed<toml::array>(take(key), key, expected);
  }

  /// The first unknown key (in document order) if there is one, else the
  /// first error kept. Unknown keys win: a misspelt key often explains a
  /// "missing" one.
  status finish() const {
    const toml::key* unknown = nullptr;
    for (const auto& entry : table_) {
      const toml::key& k = entry.first;
      if (std::find(known_.begin(), known_.end(), k.str()) != known_.end())
        continue;
      if (!unknown || earlier(k.source().begin, unknown->source().begin))
        unknown = &k;
    }
    if (!unknown)
      return error_;
    std::string msg = "unknown key '" + std::string(unknown->str()) + "' in " + what_;
    std::string closest;
    std::size_t best = 3;  // suggest only names at most two edits away
    for (const auto& k : known_)
      if (auto d = edit_distance(unknown->str(), k); d < best) {
        best = d;
        closest = k;
      }
    if (!closest.empty())
      msg += "; did you mean '" + closest + "'? Known keys: ";
    else
      msg += "; known keys: ";
    msg += joined(known_);
    return doc_.error_at(unknown->source().begin, msg);
  }

private:
  template <class T>
  auto typed(const toml::node* n, std::string_view key, const std::string& expected)
    -> decltype(n->as<T>()) {
    if (!n)
      return nullptr;
    if (auto* v = n->as<T>())
      return v;
    fail_at(*n, "'" + std::string(key) + "' in " + what_ + " must be " + expected + ", got "
                  + describe(doc_, *n));
    return nullptr;
  }

  template <class T, class Out>
  static const toml::value<T>* assign(const toml::value<T>* v, Out& out) {
    if (v)
      out = v->get();
    return v;
  }

  const source_doc& doc_;
  const toml::table& table_;
  std::string what_;
  std::vector<std::string> known_;  // in the order the getters named them
  status error_;
};

/// "remote 'inventory'", or `fallback` when the table has no usable name.
std::string named(const toml::table& t, const std::string& noun, const std::string& fallback) {
  auto name = t["name"].value<std::string>();
  return name && !name->empty() ? noun + " '" + *name + "'" : fallback;
}

int line_of(const toml::node& n) { return static_cast<int>(n.source().begin.line); }

// --- scalars and sections -----------------------------------------------------

void read_backoff(table_reader& r, backoff_config& b) {
  r.integer("initial_ms", b.initial_ms, 1);
  r.integer("max_ms", b.max_ms, 1);
  r.fraction("jitter", b.jitter);
  r.check(b.max_ms >= b.initial_ms, "max_ms",
          "'max_ms' in " + r.what() + " is " + std::to_string(b.max_ms)
            + (r.table().contains("max_ms") ? "" : " (the default)")
            + " but must be at least initial_ms (" + std::to_string(b.initial_ms)
            + "); raise max_ms or lower initial_ms");
}

// --- memory tables --------------------------------------------------------------

/// One entry of a table's `columns`, as config and as store column.
status read_column(const source_doc& doc, const toml::table& t, const std::string& table,
                   column_config& c, store::column& sc) {
  table_reader r(doc, t, named(t, "column", "a column") + " of table '" + table + "'");
  r.required_string("name", c.name, "name = \"id\"");
  auto* type = r.required_string("type", c.type,
                                 "type = \"integer\" (or boolean, real, text, bytes, numeric, "
                                 "timestamp, json)");
  r.boolean("key", c.key);
  bool nullable = !c.key;
  if (auto* n = r.boolean("nullable", nullable); n && c.key && nullable)
    r.fail_at(*n, "column '" + c.name + "' of table '" + table
                    + "' is a key column and cannot be nullable; remove nullable = true");
  c.nullable = nullable && !c.key;
  if (type) {
    auto col = to_store_column(c);
    if (col)
      sc = std::move(*col);
    else
      r.fail_at(*type, col.error().message());
  }
  return r.finish();
}

/// A TOML float for an exact column: the decimal as written ("1.20" keeps its
/// scale), without TOML's digit separators. Falls back to the shortest text
/// that reads back as the same double if the source cannot be recovered.
std::string exact_float_text(const source_doc& doc, const toml::value<double>& v) {
  std::string text(doc.text_of(v.source()));
  text.erase(std::remove(text.begin(), text.end(), '_'), text.end());
  if (!text.empty() && text.front() == '+')
    text.erase(0, 1);
  double parsed = 0;
  const char* end = text.data() + text.size();
  if (auto [p, ec] = std::from_chars(text.data(), end, parsed);
      !text.empty() && ec == std::errc() && p == end && parsed == v.get())
    return text;
  char buf[64];
  auto [p, ec] = std::to_chars(buf, buf + sizeof buf, v.get());
  (void)ec;  // 64 bytes hold any double
  return std::string(buf, p);
}

/// One seed value, typed by its column. Exact columns keep text as written.
store::result<store::value> read_cell(const source_doc& doc, const toml::node& n,
                                      const std::string& table, const store::column& c) {
  auto wrong = [&](const std::string& expected) {
    return doc.error_at(n.source().begin, "value for column '" + c.name + "' of table '" + table
                                            + "' must be " + expected + ", got "
                                            + describe(doc, n));
  };
  switch (c.kind) {
    case store::value_kind::boolean:
      if (auto* b = n.as_boolean())
        return store::value::boolean(b->get());
      return wrong("true or false");
    case store::value_kind::integer:
      if (auto* i = n.as_integer())
        return store::value::integer(i->get());
      return wrong("an integer");
    case store::value_kind::real:
      if (auto* d = n.as_floating_point())
        return store::value::real(d->get());
      if (auto* i = n.as_integer())
        return store::value::real(static_cast<double>(i->get()));
      return wrong("a number");
    case store::value_kind::text:
      if (auto* s = n.as_string())
        return store::value::text(s->get());
      return wrong("a string");
    case store::value_kind::bytes:
      if (auto* s = n.as_string())
        return store::value::bytes(s->get());
      return wrong("a string (its bytes are taken as they are)");
    case store::value_kind::exact:
      if (auto* s = n.as_string())
        return store::value::exact(c.type_name, s->get());
      if (c.type_name != "numeric")
        return wrong("a string");
      if (auto* i = n.as_integer())
        return store::value::exact(c.type_name, std::to_string(i->get()));
      if (auto* d = n.as_floating_point(); d && std::isfinite(d->get()))
        return store::value::exact(c.type_name, exact_float_text(doc, *d));
      return wrong("a finite number or a string");
    case store::value_kind::null:
      break;
  }
  return wrong("a value of a known type");  // to_store_column never yields null
}

status read_rows(table_reader& r, const store::schema& s, memory_table_config& out) {
  const auto* rows = r.array("rows", "an array of rows like [ [1, \"apple\"], [2, \"pear\"] ]");
  if (!rows)
    return status::ok();
  const source_doc& doc = r.doc();
  std::vector<std::string> column_names;
  for (const auto& c : s.columns)
    column_names.push_back(c.name);
  std::map<std::string, int> key_lines;  // encoded key -> line of its first row
  for (const toml::node& row_node : *rows) {
    const toml::array* cells = row_node.as_array();
    if (!cells)
      return doc.error_at(row_node.source().begin,
                          "each row of table '" + s.table + "' must be an array with one value "
                            + "per column (" + joined(column_names) + "), got "
                            + describe(doc, row_node));
    if (cells->size() != s.columns.size())
      return doc.error_at(row_node.source().begin,
                          "a row of table '" + s.table + "' has " + std::to_string(cells->size())
                            + (cells->size() == 1 ? " value" : " values") + " but the table has "
                            + std::to_string(s.columns.size())
                            + " columns (" + joined(column_names)
                            + "); give one value per column, in that order");
    store::row row;
    for (std::size_t i = 0; i < cells->size(); ++i) {
      auto v = read_cell(doc, *cells->get(i), s.table, s.columns[i]);
      if (!v)
        return v.error();
      row.push_back(std::move(*v));
    }
    const store::row key = s.key_of(row);
    auto [it, fresh] = key_lines.emplace(store::encode_key(key), line_of(row_node));
    if (!fresh)
      return doc.error_at(row_node.source().begin,
                          "a row of table '" + s.table + "' repeats the key "
                            + store::to_display(key) + " of the row at line "
                            + std::to_string(it->second) + "; each row needs its own key");
    out.rows.push_back(std::move(row));
  }
  return status::ok();
}

/// The `columns` of a table entry, each declared once, appended to `out`
/// and to `shape` (columns and primary key). Returns the TOML list (for
/// sentences about it as a whole), or nullptr when it is absent.
const toml::array* read_columns(const source_doc& doc, table_reader& r, const std::string& table,
                                std::vector<column_config>& out, store::schema& shape) {
  const std::string columns_hint =
    "columns = [ { name = \"id\", type = \"integer\", key = true }, ... ]";
  const auto* columns =
    r.tables("columns", "inline tables like { name = \"id\", type = \"integer\" }", &columns_hint);
  std::map<std::string, int> column_lines;
  for (std::size_t i = 0; columns && i < columns->size() && !r.failed(); ++i) {
    const toml::table& ct = *columns->get(i)->as_table();
    column_config c;
    store::column sc;
    if (auto st = read_column(doc, ct, table, c, sc); !st) {
      r.fail(std::move(st));
      break;
    }
    if (auto [it, fresh] = column_lines.emplace(c.name, line_of(ct)); !fresh) {
      r.fail_at(ct, "table '" + table + "' declares column '" + c.name
                      + "' twice, at lines " + std::to_string(it->second) + " and "
                      + std::to_string(line_of(ct)) + "; give each column its own name");
      break;
    }
    if (c.key)
      shape.primary_key.push_back(i);
    out.push_back(std::move(c));
    shape.columns.push_back(std::move(sc));
  }
  return columns;
}

status read_memory_table(const source_doc& doc, const toml::table& t, const std::string& remote,
                         memory_table_config& out) {
  table_reader r(doc, t,
                 named(t, "table", "this [[remotes.tables]] entry") + " of remote '" + remote
                   + "'");
  r.required_string("name", out.name, "name = \"items\" (unique within the remote)");
  store::schema s;
  s.table = out.name;
  const auto* columns = read_columns(doc, r, out.name, out.columns, s);
  if (columns && !r.failed() && s.primary_key.empty())
    r.fail_at(*columns, "table '" + out.name + "' of remote '" + remote
                          + "' has no key column; mark one or more columns key = true");
  if (!r.failed())
    r.fail(read_rows(r, s, out));
  else
    r.take("rows");  // still a known key for the unknown-key message
  return r.finish();
}

// The keys of a postgres remote: where it is, who we are, and the password
// from the config, a file or the environment.
void read_postgres_remote(table_reader& r, remote_config& out) {
  std::string host = "127.0.0.1", database = "postgres", user = "postgres";
  std::uint16_t port = 5432;
  auto* conninfo = r.string("conninfo", out.conninfo);
  auto* h = r.string("host", host);
  auto* p = r.integer("port", port, 1);
  auto* d = r.string("database", database);
  auto* u = r.string("user", user);
  std::string password, password_file, password_env;
  auto* pw = r.string("password", password);
  auto* pf = r.string("password_file", password_file);
  auto* pe = r.string("password_env", password_env);
  r.boolean("temporary_slots", out.temporary_slots);
  auto* hb = r.integer("heartbeat_ms", out.heartbeat_ms, 0);
  if (out.kind != "postgres") {
    for (const toml::node* n : {static_cast<const toml::node*>(conninfo),
                                static_cast<const toml::node*>(hb),
                                static_cast<const toml::node*>(h), static_cast<const toml::node*>(p),
                                static_cast<const toml::node*>(d), static_cast<const toml::node*>(u),
                                static_cast<const toml::node*>(pw),
                                static_cast<const toml::node*>(pf),
                                static_cast<const toml::node*>(pe)})
      if (n) {
        r.fail_at(*n, "connection settings only apply to kind = \"postgres\" remotes");
        return;
      }
    return;
  }
  if (conninfo && (h || p || d || u))
    r.fail_at(*conninfo, "give either 'conninfo' or host/port/database/user, not both");
  if ((pw ? 1 : 0) + (pf ? 1 : 0) + (pe ? 1 : 0) > 1)
    r.fail_at(pw ? *static_cast<const toml::node*>(pw) : *static_cast<const toml::node*>(pf),
              "give the password one way: 'password', 'password_file' or 'password_env'");
  if (!conninfo)
    out.conninfo = "host=" + host + " port=" + std::to_string(port) + " dbname=" + database
                   + " user=" + user;
  out.password = password;
  if (pf) {
    std::ifstream in(password_file);
    if (!in) {
      r.fail_at(*pf, "cannot read the password file '" + password_file
                       + "'; check the path and that this user may read it");
      return;
    }
    std::getline(in, out.password);
  }
  if (pe) {
    const char* v = std::getenv(password_env.c_str());
    if (!v) {
      r.fail_at(*pe, "the environment variable '" + password_env
                       + "' named by password_env is not set; export it before starting the "
                         "node");
      return;
    }
    out.password = v;
  }
}

status read_remote(const source_doc& doc, const toml::table& t, remote_config& out) {
  table_reader r(doc, t, named(t, "remote", "this [[remotes]] entry"));
  out.line = line_of(t);
  r.required_string("name", out.name, "name = \"inventory\" (unique among remotes)");
  if (auto* kind = r.required_string("kind", out.kind, "kind = \"memory\" or \"postgres\"")) {
    if (out.kind == "peer")
      r.fail_at(*kind, "remote kind 'peer' is not supported yet; it arrives with peer sync. Use "
                       "kind = \"memory\" or \"postgres\"");
    else if (out.kind != "memory" && out.kind != "postgres")
      r.fail_at(*kind, "remote kind '" + out.kind
                         + "' is unknown; use kind = \"memory\" or \"postgres\"");
  }
  r.boolean("start_down", out.start_down);
  r.boolean("dedupe_mutations", out.dedupe_mutations);
  r.integer("drop_push_acks", out.drop_push_acks, 0);
  r.integer("snapshot_delay_ms", out.snapshot_delay_ms, 0);
  r.integer("snapshot_batch_rows", out.snapshot_batch_rows, 1);
  r.integer("snapshot_batch_bytes", out.snapshot_batch_bytes, 1);
  r.fraction("failpoint_push_committed", out.failpoint_push_committed);
  read_postgres_remote(r, out);
  const auto* tables = r.tables("tables", "[[remotes.tables]] sections");
  std::map<std::string, int> table_lines;
  for (std::size_t i = 0; tables && i < tables->size() && !r.failed(); ++i) {
    const toml::table& tt = *tables->get(i)->as_table();
    memory_table_config table;
    if (auto st = read_memory_table(doc, tt, out.name, table); !st) {
      r.fail(std::move(st));
      break;
    }
    if (auto [it, fresh] = table_lines.emplace(table.name, line_of(tt)); !fresh) {
      r.fail_at(tt, "remote '" + out.name + "' declares table '" + table.name
                      + "' twice, at lines " + std::to_string(it->second) + " and "
                      + std::to_string(line_of(tt)) + "; give each table its own name");
      break;
    }
    out.tables.push_back(std::move(table));
  }
  return r.finish();
}

// --- views ----------------------------------------------------------------------

std::string view_phrase(const toml::table& t) {
  auto ns = t["namespace"].value<std::string>();
  auto name = t["name"].value<std::string>();
  if (ns && name && !ns->empty() && !name->empty())
    return "view '" + *ns + "." + *name + "'";
  return "this [[views]] entry";
}

/// One view; `remotes` are the remotes already read, for its references.
status read_view(const source_doc& doc, const toml::table& t,
                 const std::vector<remote_config>& remotes, view_config& out) {
  table_reader r(doc, t, view_phrase(t));
  out.line = line_of(t);
  r.required_string("namespace", out.ns, "namespace = \"shop\"");
  r.required_string("name", out.name, "name = \"items\"");
  if (auto* p = r.required_string("persistence", out.persistence,
                                  "persistence = \"materialized\", \"realtime\" or \"sync\"")) {
    if (out.persistence == "origin")
      r.fail_at(*p, "persistence 'origin' is not supported yet; it arrives with federation. Use "
                    "\"materialized\", \"realtime\" or \"sync\"");
    else if (out.persistence != "materialized" && out.persistence != "realtime"
             && out.persistence != "sync")
      r.fail_at(*p, "persistence '" + out.persistence
                      + "' is unknown; use \"materialized\", \"realtime\" or \"sync\"");
  }
  auto* remote = r.required_string("remote", out.remote,
                                   "remote = \"inventory\" (the name of a [[remotes]] entry)");
  auto* query = r.string("query", out.query);
  auto* source = query ? r.string("source", out.source)
                       : r.required_string("source", out.source,
                                           "source = \"items\" (a table on the remote)");
  if (query && out.source.empty())
    out.source = out.ns + "." + out.name;
  r.one_of("write_policy", out.write_policy, {"local_first", "origin_first"});
  r.one_of("origin_first_offline", out.origin_first_offline, {"refuse", "local_first"});
  auto* conflict = r.string("conflict", out.conflict);
  if (conflict)
    r.one_of("conflict", out.conflict, {"remote-wins", "local-wins", "lww", "custom"});
  auto* resolver = r.string("conflict_resolver", out.conflict_resolver);
  auto* lww_column = r.string("lww_column", out.lww_column);
  auto* version_column = r.string("version_column", out.version_column);
  auto* on_error = r.string("on_error", out.on_error);
  if (on_error)
    r.one_of("on_error", out.on_error, {"skip", "block"});
  auto* id_block = r.integer("id_block", out.id_block, 0);
  auto* client_key = r.string("client_key", out.client_key);
  if (client_key)
    r.one_of("client_key", out.client_key, {"uuid"});
  r.boolean("enabled", out.enabled);
  auto* columns = r.array("columns", "an array of column names");
  auto* key = r.array("key", "an array of key column names");
  auto* filters = r.tables("filters", "inline tables like { column = \"id\", op = \">\", value = 10 }");
  auto strings_of = [&](const toml::array* a, const char* what, std::vector<std::string>& into) {
    for (std::size_t i = 0; a && i < a->size(); ++i) {
      auto v = a->get(i)->value<std::string>();
      if (!v || v->empty()) {
        r.fail_at(*a->get(i), std::string("every entry of '") + what + "' must be a column name");
        return;
      }
      into.push_back(*v);
    }
  };
  strings_of(columns, "columns", out.columns);
  strings_of(key, "key", out.key);
  for (std::size_t i = 0; filters && i < filters->size() && !r.failed(); ++i) {
    table_reader fr(doc, *filters->get(i)->as_table(), "filter " + std::to_string(i + 1) + " of "
                                                          + view_phrase(t));
    filter_config f;
    fr.required_string("column", f.column, "column = \"id\"");
    f.op = "=";
    fr.one_of("op", f.op, {"=", "<", "<=", ">", ">=", "in"});
    auto literal = [&](const toml::node& n) -> std::optional<std::string> {
      if (auto sv = n.value<std::string>())
        return *sv;
      if (n.is_integer())
        return std::to_string(n.as_integer()->get());
      if (n.is_floating_point())
        return exact_float_text(doc, *n.as_floating_point());
      if (auto b = n.value<bool>())
        return std::string(*b ? "true" : "false");
      return std::nullopt;
    };
    if (f.op == "in") {
      auto* vs = fr.array("values", "an array of values");
      for (std::size_t j = 0; vs && j < vs->size(); ++j) {
        auto lit = literal(*vs->get(j));
        if (!lit) {
          fr.fail_at(*vs->get(j), "filter values must be strings, numbers or booleans");
          break;
        }
        f.values.push_back(*lit);
      }
      if (!vs)
        fr.check(false, "values", "an 'in' filter needs values = [ ... ]");
    } else if (const toml::node* v = fr.take_required("value", "value = 10")) {
      auto lit = literal(*v);
      if (!lit)
        fr.fail_at(*v, "a filter value must be a string, number or boolean");
      else
        f.values.push_back(*lit);
    }
    r.fail(fr.finish());
    out.filters.push_back(std::move(f));
  }

  if (remote && !r.failed()) {
    auto it = std::find_if(remotes.begin(), remotes.end(),
                           [&](const remote_config& rc) { return rc.name == out.remote; });
    if (it == remotes.end()) {
      std::vector<std::string> names;
      for (const auto& rc : remotes)
        names.push_back(rc.name);
      r.fail_at(*remote, "view '" + out.full_name() + "' names remote '" + out.remote
                           + "', which is not declared; "
                           + (names.empty() ? "add a [[remotes]] entry with that name"
                                            : "declared remotes: " + joined(names)));
    } else if (it->kind == "postgres") {
      if (out.persistence == "sync" && query)
        r.fail_at(*t.get("persistence"),
                  "view '" + out.full_name()
                    + "' reads a query and is a sync view; a write to a query's result cannot "
                      "be pushed back (which table, which row?), so sync views are of tables: "
                      "use source = \"schema.table\", or make this view materialized");
      if (out.persistence == "sync" && out.conflict == "custom") {
        const auto names = conflict_resolver_names();
        if (out.conflict_resolver.empty())
          r.fail_at(*conflict, "view '" + out.full_name()
                                 + "' resolves conflicts with a custom resolver but names none; "
                                   "add conflict_resolver = \"name\" (registered: "
                                 + joined(names) + ")");
        else if (std::find(names.begin(), names.end(), out.conflict_resolver) == names.end())
          r.fail_at(*resolver, "view '" + out.full_name() + "' names conflict_resolver '"
                                 + out.conflict_resolver
                                 + "', which is not registered; registered: " + joined(names)
                                 + " (a program that embeds syncmesh registers its own with "
                                   "register_conflict_resolver before loading the config)");
      } else if (resolver) {
        r.fail_at(*resolver, "conflict_resolver applies with conflict = \"custom\" only; view '"
                               + out.full_name() + "' resolves by \"" + out.conflict + "\"");
      }
      if (out.persistence == "sync" && out.conflict == "lww" && out.lww_column.empty())
        r.fail_at(*conflict, "view '" + out.full_name()
                               + "' resolves conflicts by \"lww\" but names no lww_column; add "
                                 "lww_column = \"updated_at\" (a timestamp column)");
      // A query without a key is refused when the view runs, in its status,
      // so that the rest of the node keeps running.
      if (query && out.persistence == "realtime")
        r.fail_at(*t.get("persistence"),
                  "view '" + out.full_name()
                    + "' reads a query and is realtime; the change stream says which table "
                      "rows changed, not how a query's result changes (joins, aggregates), so "
                      "query views are materialized: use persistence = \"materialized\" and "
                      "sync it when needed, or a realtime view of a table with columns and "
                      "filters");
      if (!query && !out.key.empty())
        r.fail_at(*key, "'key' is only for query views; a table's key comes from its catalog");
      if (query && (!out.filters.empty() || !out.columns.empty()))
        r.fail_at(*query, "a query view takes no 'columns' or 'filters'; put them in the query");
      if (out.persistence != "sync"
          && (conflict || lww_column || version_column || on_error))
        r.fail_at(*(conflict ? conflict : lww_column ? lww_column
                    : version_column ? version_column : on_error),
                  "conflict, lww_column, version_column and on_error apply to sync views only; "
                  "view '" + out.full_name() + "' is " + out.persistence);
      if (out.persistence != "sync" && id_block)
        r.fail_at(*id_block, "id_block applies to sync views only (it leases ids for their "
                             "offline inserts); view '" + out.full_name() + "' is "
                               + out.persistence);
      if (out.persistence != "sync" && client_key)
        r.fail_at(*client_key, "client_key applies to sync views only (it makes keys for their "
                               "inserts); view '" + out.full_name() + "' is "
                                 + out.persistence);
    } else if (query || !out.columns.empty() || !out.filters.empty() || !out.key.empty()) {
      r.fail_at(query ? *static_cast<const toml::node*>(query)
                      : *static_cast<const toml::node*>(t.get("columns") ? t.get("columns")
                                                        : t.get("filters") ? t.get("filters")
                                                                           : t.get("key")),
                "query, columns, filters and key apply to views of postgres remotes only");
    } else if (source && it->kind == "memory") {
      std::vector<std::string> names;
      for (const auto& table : it->tables)
        names.push_back(table.name);
      if (std::find(names.begin(), names.end(), out.source) == names.end())
        r.fail_at(*source, "view '" + out.full_name() + "' reads table '" + out.source
                             + "', which remote '" + out.remote + "' does not have; "
                             + (names.empty() ? "it declares no tables"
                                              : "its tables: " + joined(names)));
    }
  }
  return r.finish();
}

// --- peer sync ------------------------------------------------------------------

/// The strings of an array key, each non-empty; `what` says what one names.
void read_strings(table_reader& r, std::string_view key, const std::string& what,
                  std::vector<std::string>& out) {
  auto* a = r.array(key, "an array of " + what + "s");
  for (std::size_t i = 0; a && i < a->size(); ++i) {
    auto v = a->get(i)->value<std::string>();
    if (!v || v->empty()) {
      r.fail_at(*a->get(i), "every entry of '" + std::string(key) + "' in " + r.what()
                              + " must be a " + what + " (a non-empty string)");
      return;
    }
    out.push_back(*v);
  }
}

/// A [[tables]] entry: a peer-synced local table.
status read_peer_table(const source_doc& doc, const toml::table& t, peer_table_config& out) {
  table_reader r(doc, t, named(t, "peer table", "this [[tables]] entry"));
  out.line = line_of(t);
  if (auto* n = r.required_string("name", out.name, "name = \"app.notes\" (namespace.table)");
      n && (out.name.find('.') == std::string::npos || out.name.front() == '.'
            || out.name.back() == '.'))
    r.fail_at(*n, "peer table name '" + out.name
                    + "' must be namespace.table, like \"app.notes\"");
  store::schema shape;
  const auto* columns = read_columns(doc, r, out.name, out.columns, shape);
  const bool has_key = !shape.primary_key.empty();
  if (columns && !r.failed() && !has_key)
    r.fail_at(*columns, "peer table '" + out.name
                          + "' has no key column; mark one or more columns key = true");
  return r.finish();
}

/// [peer]: the listening socket, keys, allow-list and protocol timing.
/// Refuses `name`, read from `at`, unless a trust policy is registered
/// under it.
void check_trust_policy(table_reader& r, const toml::node* at, const std::string& name,
                        const std::string& where) {
  if (!at)
    return;
  const auto names = trust_policy_names();
  if (std::find(names.begin(), names.end(), name) == names.end())
    r.fail_at(*at, "'trust_policy' " + where + " names '" + name
                     + "', which is not a registered trust policy; registered: " + joined(names)
                     + " (a program that embeds syncmesh registers its own with "
                       "register_trust_policy before loading the config)");
}

status read_peer(const source_doc& doc, const toml::table& t, peer_config& out) {
  table_reader r(doc, t, "[peer]");
  r.string("listen", out.listen);
  auto* sk = r.string("secret_key_file", out.secret_key_file);
  auto* pk = r.string("public_key_file", out.public_key_file);
  r.boolean("insecure", out.insecure);
  if (static_cast<bool>(sk) != static_cast<bool>(pk))
    r.fail_at(sk ? *static_cast<const toml::node*>(sk) : *static_cast<const toml::node*>(pk),
              "[peer] needs both secret_key_file and public_key_file (`syncmesh keygen PATH` "
              "writes PATH and PATH.pub), or neither");
  // Key files are relative to the config file, and read now so that a
  // missing, unreadable or mismatched one is refused with its line.
  const auto config_dir = std::filesystem::path(doc.name()).parent_path();
  for (auto* file : {&out.secret_key_file, &out.public_key_file})
    if (!file->empty() && std::filesystem::path(*file).is_relative())
      *file = (config_dir / *file).lexically_normal().string();
  if (sk && pk && !r.failed()) {
    auto keys = messaging::load_curve_key_pair(out.secret_key_file);
    auto pub = messaging::load_curve_public_key(out.public_key_file);
    if (!keys)
      r.fail_at(*sk, keys.error().message());
    else if (!pub)
      r.fail_at(*pk, pub.error().message());
    else if (*pub != keys->public_key)
      r.fail_at(*pk, "the public key in '" + out.public_key_file
                       + "' does not belong to the secret key in '" + out.secret_key_file
                       + "'; give the pair `syncmesh keygen PATH` wrote (PATH and PATH.pub)");
  }
  const auto* allow = r.tables("allow", "inline tables like { node = \"spoke-1\", key = \"...\" }");
  for (std::size_t i = 0; allow && i < allow->size() && !r.failed(); ++i) {
    const toml::table& at = *allow->get(i)->as_table();
    table_reader ar(doc, at, "entry " + std::to_string(i + 1) + " of 'allow' in [peer]");
    peer_allow_config a;
    ar.required_string("node", a.node, "node = \"spoke-1\" (the node id that key may use)");
    if (auto* k = ar.required_string("key", a.key, "key = \"<40 Z85 characters>\" (from its .pub file)");
        k && !messaging::is_z85_key(a.key))
      ar.fail_at(*k, "'key' of node '" + a.node
                       + "' is not a CURVE public key (40 Z85 characters); copy it from the "
                         "node's .pub file");
    r.fail(ar.finish());
    out.allow.push_back(std::move(a));
  }
  if (allow && !sk && !r.failed())
    r.fail_at(*allow, "'allow' in [peer] needs keys: set secret_key_file and public_key_file");
  r.integer("batch_max", out.batch_max, 1);
  r.integer("in_flight_max", out.in_flight_max, 1);
  r.integer("credits", out.credits, 1);
  r.integer("credit_bytes", out.credit_bytes, 1);
  r.integer("pause_at", out.pause_at, 1);
  r.integer("commit_delay_ms", out.commit_delay_ms, 0);
  r.integer("commits_in_flight_max", out.commits_in_flight_max, 1);
  r.integer("retransmit_ms", out.retransmit_ms, 1);
  r.integer("heartbeat_ms", out.heartbeat_ms, 1);
  r.integer("dead_after_ms", out.dead_after_ms, 1);
  r.integer("reconnect_initial_ms", out.reconnect_initial_ms, 1);
  r.integer("reconnect_max_ms", out.reconnect_max_ms, 1);
  r.integer("frame_bytes_max", out.frame_bytes_max, 1024);
  r.integer("tombstone_retention_ms", out.tombstone_retention_ms, 1000);
  r.integer("log_retention_ms", out.log_retention_ms, 0);
  r.integer("gc_interval_ms", out.gc_interval_ms, 10);
  r.integer("failpoint_fail_after_frames", out.failpoint_fail_after_frames, 0);
  check_trust_policy(r, r.string("trust_policy", out.trust_policy), out.trust_policy,
                     "in [peer]");
  if (auto* tw = r.string("tie_winner", out.tie_winner); tw && out.tie_winner.empty())
    r.fail_at(*tw, "'tie_winner' in [peer] is empty; name the node whose writes win ties "
                   "(the same on every node of the cluster), or leave the key out");
  r.check(out.dead_after_ms > out.heartbeat_ms, "dead_after_ms",
          "'dead_after_ms' in [peer] (" + std::to_string(out.dead_after_ms)
            + ") must be above heartbeat_ms (" + std::to_string(out.heartbeat_ms)
            + "), or every idle link would be declared dead");
  r.check(out.credits <= messaging::peer::limits{}.credits_max, "credits",
          "'credits' in [peer] (" + std::to_string(out.credits) + ") is above "
            + std::to_string(messaging::peer::limits{}.credits_max)
            + ", the most one grant of the peer protocol may carry; give a smaller number");
  r.check(out.pause_at <= out.credits, "pause_at",
          "'pause_at' in [peer] (" + std::to_string(out.pause_at) + ") is above credits ("
            + std::to_string(out.credits)
            + "), so a peer would never be paused; give at most credits");
  r.check(out.reconnect_max_ms >= out.reconnect_initial_ms, "reconnect_max_ms",
          "'reconnect_max_ms' in [peer] must be at least reconnect_initial_ms ("
            + std::to_string(out.reconnect_initial_ms) + ")");
  return r.finish();
}

/// A [[links]] entry; `tables` are the peer tables already read.
status read_link(const source_doc& doc, const toml::table& t,
                 const std::vector<peer_table_config>& tables, bool keyed, peer_link_config& out) {
  auto peer = t["peer"].value<std::string>();
  table_reader r(doc, t, peer && !peer->empty() ? "link '" + *peer + "'" : "this [[links]] entry");
  out.line = line_of(t);
  r.required_string("peer", out.peer, "peer = \"hub\" (the other node's node_id)");
  auto* ep = r.string("endpoint", out.endpoint);
  if (ep && out.endpoint.empty())
    r.fail_at(*ep, "'endpoint' of link '" + out.peer
                     + "' is empty; write the peer's listen endpoint, like "
                       "\"tcp://127.0.0.1:7700\", or leave it out when the peer dials this node");
  auto* key = r.string("server_key", out.server_key);
  if (key && !messaging::is_z85_key(out.server_key))
    r.fail_at(*key, "'server_key' of link '" + out.peer
                      + "' is not a CURVE public key (40 Z85 characters); copy it from the "
                        "peer's .pub file");
  else if (key && !ep)
    r.fail_at(*key, "'server_key' is for the dialing side; link '" + out.peer
                      + "' has no endpoint");
  else if (ep && keyed && !key && !r.failed())
    r.fail_at(*ep, "link '" + out.peer
                     + "' dials with CURVE ([peer] has keys) and needs server_key = the peer's "
                       "public key");
  r.one_of("mode", out.mode, {"push", "pull", "bidirectional"});
  auto* tl = r.take("tables");
  read_strings(r, "tables", "peer table name", out.tables);
  for (std::size_t i = 0; tl && i < out.tables.size() && !r.failed(); ++i)
    if (std::none_of(tables.begin(), tables.end(),
                     [&](const peer_table_config& pt) { return pt.name == out.tables[i]; })) {
      std::vector<std::string> names;
      for (const auto& pt : tables)
        names.push_back(pt.name);
      r.fail_at(*tl->as_array()->get(i),
                "link '" + out.peer + "' carries table '" + out.tables[i]
                  + "', which is not a [[tables]] entry; "
                  + (names.empty() ? "declare it in [[tables]]" : "peer tables: " + joined(names)));
    }
  read_strings(r, "trusted_origins", "node id", out.trusted_origins);
  check_trust_policy(r, r.string("trust_policy", out.trust_policy), out.trust_policy,
                     "of link '" + out.peer + "'");

  // Excluded columns and filters name columns of the peer tables.
  auto schema_named = [&](const std::string& name) -> std::optional<store::schema> {
    for (const auto& pt : tables)
      if (pt.name == name)
        return peer_table_schema(pt);
    return std::nullopt;
  };
  auto table_names = [&] {
    std::vector<std::string> names;
    for (const auto& pt : tables)
      names.push_back(pt.name);
    return joined(names);
  };
  auto column_index = [](const store::schema& s, const std::string& column) -> int {
    for (std::size_t i = 0; i < s.columns.size(); ++i)
      if (s.columns[i].name == column)
        return static_cast<int>(i);
    return -1;
  };
  auto column_names = [](const store::schema& s) {
    std::vector<std::string> names;
    for (const auto& c : s.columns)
      names.push_back(c.name);
    return joined(names);
  };
  auto* ex = r.take("exclude");
  read_strings(r, "exclude", "column (\"ns.table.column\")", out.exclude);
  for (std::size_t i = 0; ex && i < out.exclude.size() && !r.failed(); ++i) {
    const auto& name = out.exclude[i];
    const toml::node& at = *ex->as_array()->get(i);
    const auto dot = name.rfind('.');
    auto s = dot == std::string::npos ? std::nullopt : schema_named(name.substr(0, dot));
    if (!s) {
      r.fail_at(at, "link '" + out.peer + "' excludes '" + name
                      + "', which is not a column of a peer table; write \"ns.table.column\" "
                        "(peer tables: " + table_names() + ")");
      break;
    }
    const auto column = name.substr(dot + 1);
    const int col = column_index(*s, column);
    if (col < 0) {
      r.fail_at(at, "link '" + out.peer + "' excludes '" + name + "', and table '" + s->table
                      + "' has no column '" + column + "' (columns: " + column_names(*s) + ")");
    } else if (std::find(s->primary_key.begin(), s->primary_key.end(),
                         static_cast<std::size_t>(col)) != s->primary_key.end()) {
      r.fail_at(at, "link '" + out.peer + "' excludes '" + name
                      + "', a key column of '" + s->table
                      + "'; a row cannot cross a link without its key, so exclude other columns "
                        "or leave the table out of 'tables'");
    } else if (!s->columns[col].nullable) {
      r.fail_at(at, "link '" + out.peer + "' excludes '" + name
                      + "', which is not nullable; the peer holds NULL where it never gets a "
                        "value, so declare the column nullable = true or do not exclude it");
    }
  }
  auto* filters = r.tables("filters", "inline tables like { table = \"app.notes\", column = "
                                      "\"id\", op = \">\", values = [10] }");
  for (std::size_t i = 0; filters && i < filters->size() && !r.failed(); ++i) {
    table_reader fr(doc, *filters->get(i)->as_table(),
                    "filter " + std::to_string(i + 1) + " of link '" + out.peer + "'");
    peer_filter_config f;
    auto* tn = fr.required_string("table", f.table, "table = \"app.notes\" (a peer table)");
    auto* cn = fr.required_string("column", f.column, "column = \"id\"");
    fr.one_of("op", f.op, {"=", "<", "<=", ">", ">=", "in"});
    auto* vs = fr.array("values", "an array of values, like [10] or [\"a\", \"b\"]");
    if (!vs)
      fr.check(false, "values", "a filter needs values = [ ... ] (one value, or several for 'in')");
    std::optional<store::schema> s;
    int col = -1;
    if (tn && !fr.failed()) {
      s = schema_named(f.table);
      if (!s)
        fr.fail_at(*tn, "filter " + std::to_string(i + 1) + " of link '" + out.peer
                          + "' names table '" + f.table + "', which is not a peer table (peer "
                            "tables: " + table_names() + ")");
      else if (!out.tables.empty()
               && std::find(out.tables.begin(), out.tables.end(), f.table) == out.tables.end())
        fr.fail_at(*tn, "filter " + std::to_string(i + 1) + " of link '" + out.peer
                          + "' is on table '" + f.table
                          + "', which the link does not carry; add it to 'tables' or drop the "
                            "filter");
    }
    if (s && cn && !fr.failed()) {
      col = column_index(*s, f.column);
      if (col < 0)
        fr.fail_at(*cn, "table '" + f.table + "' has no column '" + f.column + "' (columns: "
                          + column_names(*s) + ")");
      else if (std::find(out.exclude.begin(), out.exclude.end(), f.table + "." + f.column)
               != out.exclude.end())
        fr.fail_at(*cn, "link '" + out.peer + "' filters on '" + f.table + "." + f.column
                          + "' and also excludes it; a row cannot be judged on a column that "
                            "does not cross the link");
    }
    if (s && col >= 0 && vs && !fr.failed()) {
      const auto& c = s->columns[static_cast<std::size_t>(col)];
      if (f.op != "in" && vs->size() != 1)
        fr.fail_at(*vs, "a '" + f.op + "' filter takes one value, like values = [10]; 'in' takes "
                          "several");
      else if (vs->size() == 0)
        fr.fail_at(*vs, "an 'in' filter needs at least one value");
      else if (f.op != "=" && f.op != "in" && c.kind != store::value_kind::integer
               && c.kind != store::value_kind::real && c.kind != store::value_kind::text
               && c.kind != store::value_kind::boolean)
        fr.fail_at(*vs, "column '" + f.column + "' is " + c.type_name
                          + "; a link filter compares such values with '=' or 'in' only");
      for (std::size_t j = 0; j < vs->size() && !fr.failed(); ++j) {
        auto v = read_cell(doc, *vs->get(j), f.table, c);
        if (!v)
          fr.fail(v.error());
        else
          f.values.push_back(std::move(v).value());
      }
    }
    r.fail(fr.finish());
    out.filters.push_back(std::move(f));
  }
  return r.finish();
}

// --- the document -----------------------------------------------------------------

store::result<node_config> parse_document(const source_doc& doc, std::string_view text) {
  toml::table root;
  try {
    root = toml::parse(text, std::string_view(doc.name()));
  } catch (const toml::parse_error& e) {
    return doc.error_at(e.source().begin, std::string(e.description()));
  }

  node_config cfg;
  cfg.source_path = doc.name();
  table_reader r(doc, root, "the top-level table");
  r.required_string("node_id", cfg.node_id, "node_id = \"node-a\" (unique among your nodes)");
  r.required_string("data_dir", cfg.data_dir,
                    "data_dir = \"./data/node-a\" (relative to the config file)");
  r.string("control_endpoint", cfg.control_endpoint);
  r.check(!cfg.control_endpoint.empty(), "control_endpoint",
          "'control_endpoint' must not be empty; write e.g. \"tcp://127.0.0.1:7400\" (port 0 "
          "lets the OS choose)");
  r.string("events_endpoint", cfg.events_endpoint);
  std::string durability;
  if (auto* d = r.string("durability", durability)) {
    if (auto mode = store::parse_durability(durability))
      cfg.durability = *mode;
    else
      r.fail_at(*d, mode.error().message());
  }
  r.one_of("log_level", cfg.log_level, {"trace", "debug", "info", "warn", "error", "off"});
  r.integer("control_request_bytes_max", cfg.control_request_bytes_max, 1024);
  r.integer("query_rows_max", cfg.query_rows_max, 1);
  r.integer("seed", cfg.seed, 0);

  if (auto* t = r.subtable("retry")) {
    table_reader retry(doc, *t, "[retry]");
    read_backoff(retry, cfg.retry);
    r.fail(retry.finish());
  }
  if (auto* t = r.subtable("restart")) {
    table_reader restart(doc, *t, "[restart]");
    read_backoff(restart, cfg.restart);
    restart.integer("intensity_max", cfg.restart_intensity_max, 1);
    restart.integer("window_ms", cfg.restart_window_ms, 1);
    r.fail(restart.finish());
  }

  std::map<std::string, int> remote_lines;
  if (auto* remotes = r.tables("remotes", "[[remotes]] sections")) {
    for (const toml::node& n : *remotes) {
      remote_config rc;
      if (auto st = read_remote(doc, *n.as_table(), rc); !st) {
        r.fail(std::move(st));
        break;
      }
      if (auto [it, fresh] = remote_lines.emplace(rc.name, rc.line); !fresh) {
        r.fail_at(n, "remote '" + rc.name + "' is declared twice, at lines "
                       + std::to_string(it->second) + " and " + std::to_string(rc.line)
                       + "; give each remote its own name");
        break;
      }
      cfg.remotes.push_back(std::move(rc));
    }
  }

  std::map<std::string, int> view_lines;  // "ns.name" -> line
  if (auto* views = r.tables("views", "[[views]] sections"); views && !r.failed()) {
    for (const toml::node& n : *views) {
      view_config v;
      if (auto st = read_view(doc, *n.as_table(), cfg.remotes, v); !st) {
        r.fail(std::move(st));
        break;
      }
      if (auto [it, fresh] = view_lines.emplace(v.full_name(), v.line); !fresh) {
        r.fail_at(n, "view '" + v.full_name() + "' is declared twice, at lines "
                       + std::to_string(it->second) + " and " + std::to_string(v.line)
                       + "; give each view its own (namespace, name)");
        break;
      }
      cfg.views.push_back(std::move(v));
    }
  }

  std::map<std::string, int> table_lines;
  if (auto* tables = r.tables("tables", "[[tables]] sections"); tables && !r.failed()) {
    for (const toml::node& n : *tables) {
      peer_table_config pt;
      if (auto st = read_peer_table(doc, *n.as_table(), pt); !st) {
        r.fail(std::move(st));
        break;
      }
      if (auto [it, fresh] = table_lines.emplace(pt.name, pt.line); !fresh) {
        r.fail_at(n, "peer table '" + pt.name + "' is declared twice, at lines "
                       + std::to_string(it->second) + " and " + std::to_string(pt.line)
                       + "; give each table its own name");
        break;
      }
      if (auto v = view_lines.find(pt.name); v != view_lines.end()) {
        r.fail_at(n, "peer table '" + pt.name + "' has the name of the view at line "
                       + std::to_string(v->second) + "; give it another name");
        break;
      }
      cfg.tables.push_back(std::move(pt));
    }
  }
  if (auto* t = r.subtable("peer"); t && !r.failed())
    r.fail(read_peer(doc, *t, cfg.peer));
  std::map<std::string, int> link_lines;
  if (auto* links = r.tables("links", "[[links]] sections"); links && !r.failed()) {
    if (cfg.tables.empty() && !links->empty())
      r.fail_at(*links, "[[links]] sync peer tables, and this config declares none; add a "
                        "[[tables]] entry");
    for (std::size_t i = 0; i < links->size() && !r.failed(); ++i) {
      const toml::node& n = *links->get(i);
      peer_link_config lc;
      if (auto st = read_link(doc, *n.as_table(), cfg.tables, !cfg.peer.secret_key_file.empty(), lc);
          !st) {
        r.fail(std::move(st));
        break;
      }
      if (lc.peer == cfg.node_id) {
        r.fail_at(n, "link '" + lc.peer + "' names this node itself; a link names another node");
        break;
      }
      if (auto [it, fresh] = link_lines.emplace(lc.peer, lc.line); !fresh) {
        r.fail_at(n, "peer '" + lc.peer + "' has two links, at lines " + std::to_string(it->second)
                       + " and " + std::to_string(lc.line) + "; keep one link per peer");
        break;
      }
      cfg.links.push_back(std::move(lc));
    }
  }

  if (auto st = r.finish(); !st)
    return st;
  return cfg;
}

} // namespace

store::result<node_config> parse_node_config(const std::string& text,
                                             const std::string& source_name) {
  return parse_document(source_doc(text, source_name), text);
}

store::result<node_config> load_node_config(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::is_directory(path, ec))
    return status::io_error(path + ": cannot read the config file: it is a directory; "
                                   "give the path of a TOML file");
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return status::io_error(path + ": cannot read the config file: " + std::strerror(errno)
                            + "; check the path and its permissions");
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad())
    return status::io_error(path + ": reading the config file failed: " + std::strerror(errno));

  auto cfg = parse_node_config(text.str(), path);
  if (!cfg)
    return cfg;
  const fs::path data_dir(cfg->data_dir);
  if (data_dir.is_relative())
    cfg->data_dir = (fs::path(path).parent_path() / data_dir).lexically_normal().string();
  return cfg;
}

store::result<store::column> to_store_column(const column_config& c) {
  static const std::pair<const char*, store::value_kind> kinds[] = {
    {"boolean", store::value_kind::boolean}, {"integer", store::value_kind::integer},
    {"real", store::value_kind::real},       {"text", store::value_kind::text},
    {"bytes", store::value_kind::bytes},     {"numeric", store::value_kind::exact},
    {"timestamp", store::value_kind::exact}, {"json", store::value_kind::exact},
  };
  for (const auto& [name, kind] : kinds) {
    if (c.type != name)
      continue;
    store::column col;
    col.name = c.name;
    col.kind = kind;
    if (kind == store::value_kind::exact)
      col.type_name = c.type;
    col.nullable = c.nullable && !c.key;
    return col;
  }
  return status::invalid_argument("column '" + c.name + "' has type '" + c.type
                                  + "', which is unknown; use boolean, integer, real, text, "
                                    "bytes, numeric, timestamp or json");
}

store::schema peer_table_schema(const peer_table_config& t) {
  store::schema s;
  s.table = t.name;
  for (std::size_t i = 0; i < t.columns.size(); ++i) {
    if (auto col = to_store_column(t.columns[i]); col)
      s.columns.push_back(*col);
    if (t.columns[i].key)
      s.primary_key.push_back(i);
  }
  return s;
}

store::schema memory_table_schema(const memory_table_config& t) {
  store::schema s;
  s.table = t.name;
  for (std::size_t i = 0; i < t.columns.size(); ++i) {
    if (auto col = to_store_column(t.columns[i]); col)
      s.columns.push_back(*col);
    if (t.columns[i].key)
      s.primary_key.push_back(i);
  }
  return s;
}

} // namespace syncmesh::actors
