#include "connectors/postgres/row_filter.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <optional>

namespace syncmesh::connectors::postgres {

using store::result;
using store::status;

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view trimmed(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front())))
    s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())))
    s.remove_suffix(1);
  return s;
}

// Days from 2000-01-01 to the proleptic Gregorian date y-m-d, y astronomical
// (1 BC is year 0); Howard Hinnant's days_from_civil.
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2 ? 1 : 0;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468 - 10957;
}

unsigned days_in_month(std::int64_t y, unsigned m) {
  static const unsigned days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return m == 2 && leap ? 29 : days[m - 1];
}

// Date and time text as PostgreSQL prints it under DateStyle ISO:
// YYYY-MM-DD, then [ T]HH:MM[:SS[.ffffff]], then an offset (Z, ±HH,
// ±HH:MM, ±HH:MM:SS, ±HHMM), then " BC" or " AD"; or ±infinity.
struct iso_datetime {
  int cls = 0;               // -1 -infinity, 0 finite, 1 infinity
  std::int64_t days = 0;     // since 2000-01-01
  std::int64_t micros = 0;   // into the day
  bool has_time = false;
  bool has_offset = false;
  std::int64_t offset_s = 0;  // east of UTC
};

// nullopt for text that is not ISO date/time; `why` then says what is wrong.
std::optional<iso_datetime> parse_iso_datetime(std::string_view text, std::string& why) {
  iso_datetime out;
  auto t = trimmed(text);
  auto l = lower(t);
  if (l == "infinity" || l == "+infinity") {
    out.cls = 1;
    return out;
  }
  if (l == "-infinity") {
    out.cls = -1;
    return out;
  }
  bool bc = false;
  if (l.size() > 3 && (l.compare(l.size() - 3, 3, " bc") == 0 || l.compare(l.size() - 3, 3, " ad") == 0)) {
    bc = l.compare(l.size() - 3, 3, " bc") == 0;
    t = trimmed(t.substr(0, t.size() - 3));
  }
  std::size_t i = 0;
  // Reads at least min and at most max digits.
  auto number = [&](std::size_t min, std::size_t max, std::int64_t& v) {
    std::size_t n = 0;
    v = 0;
    while (i < t.size() && n < max && t[i] >= '0' && t[i] <= '9') {
      v = v * 10 + (t[i++] - '0');
      ++n;
    }
    return n >= min;
  };
  auto expect = [&](char c) {
    if (i < t.size() && t[i] == c) {
      ++i;
      return true;
    }
    return false;
  };
  std::int64_t year = 0, month = 0, day = 0;
  if (!number(1, 7, year) || !expect('-') || !number(1, 2, month) || !expect('-')
      || !number(1, 2, day)) {
    why = "not an ISO date (YYYY-MM-DD)";
    return std::nullopt;
  }
  if (year == 0 || year > 5874897 || month < 1 || month > 12) {
    why = "a date out of range";
    return std::nullopt;
  }
  const std::int64_t y = bc ? 1 - year : year;
  if (day < 1 || day > days_in_month(y, static_cast<unsigned>(month))) {
    why = "a date out of range";
    return std::nullopt;
  }
  out.days = days_from_civil(y, static_cast<unsigned>(month), static_cast<unsigned>(day));
  if (i < t.size() && (t[i] == ' ' || t[i] == 'T' || t[i] == 't')) {
    ++i;
    std::int64_t hour = 0, minute = 0, second = 0, fraction = 0;
    if (!number(1, 2, hour) || !expect(':') || !number(2, 2, minute)) {
      why = "not an ISO time (HH:MM[:SS[.ffffff]])";
      return std::nullopt;
    }
    if (expect(':')) {
      if (!number(2, 2, second)) {
        why = "not an ISO time (HH:MM[:SS[.ffffff]])";
        return std::nullopt;
      }
      if (expect('.')) {
        std::size_t start = i;
        if (!number(1, 6, fraction) || (i < t.size() && t[i] >= '0' && t[i] <= '9')) {
          why = "a time with more than six fractional digits (PostgreSQL keeps microseconds)";
          return std::nullopt;
        }
        for (auto n = i - start; n < 6; ++n)
          fraction *= 10;
      }
    }
    if (hour > 24 || minute > 59 || second > 60
        || (hour == 24 && (minute != 0 || second != 0 || fraction != 0))) {
      why = "a time out of range";
      return std::nullopt;
    }
    out.has_time = true;
    out.micros = ((hour * 60 + minute) * 60 + second) * 1'000'000 + fraction;
    if (i < t.size() && t[i] == ' ')
      ++i;
    if (i < t.size() && (t[i] == 'Z' || t[i] == 'z')) {
      ++i;
      out.has_offset = true;
    } else if (i < t.size() && (t[i] == '+' || t[i] == '-')) {
      const bool west = t[i++] == '-';
      std::int64_t oh = 0, om = 0, os = 0;
      bool ok = number(1, 2, oh);
      if (ok && expect(':')) {
        ok = number(2, 2, om);
        if (ok && expect(':'))
          ok = number(2, 2, os);
      } else if (ok && i < t.size() && t[i] >= '0' && t[i] <= '9') {
        ok = number(2, 2, om);  // ±HHMM
      }
      if (!ok || oh > 15 || om > 59 || os > 59) {
        why = "a time zone offset out of range (±HH[:MM[:SS]], at most 15 hours)";
        return std::nullopt;
      }
      out.has_offset = true;
      out.offset_s = (west ? -1 : 1) * ((oh * 60 + om) * 60 + os);
    }
  }
  if (i != t.size()) {
    why = "not ISO date/time text";
    return std::nullopt;
  }
  return out;
}

} // namespace

bool byte_ordered_collation(const std::string& collation) {
  auto c = lower(collation);
  return c == "c" || c == "posix" || c == "c.utf-8" || c == "c.utf8";
}

result<row_filter::operand> row_filter::parse(type_class type, const std::string& text,
                                              bool filter_value) {
  operand out;
  auto bad = [&](const char* what) {
    return status::invalid_argument("'" + text + "' is not " + what);
  };
  switch (type) {
    case type_class::boolean: {
      // PostgreSQL's boolin: these words, any case, surrounding blanks.
      auto t = lower(trimmed(text));
      if (t == "t" || t == "true" || t == "y" || t == "yes" || t == "on" || t == "1")
        out.integer = 1;
      else if (t == "f" || t == "false" || t == "n" || t == "no" || t == "off" || t == "0")
        out.integer = 0;
      else
        return bad("a boolean (true, false, t, f, yes, no, on, off, 1, 0)");
      return out;
    }
    case type_class::integer: {
      auto t = trimmed(text);
      if (!t.empty() && t.front() == '+')
        t.remove_prefix(1);
      auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), out.integer);
      if (t.empty() || ec != std::errc() || p != t.data() + t.size())
        return bad("an integer");
      return out;
    }
    case type_class::real: {
      auto t = std::string(trimmed(text));
      char* end = nullptr;
      out.real = std::strtod(t.c_str(), &end);
      if (t.empty() || end != t.c_str() + t.size())
        return bad("a floating-point number");
      if (std::isnan(out.real))
        out.cls = 2;
      return out;
    }
    case type_class::numeric: {
      auto t = trimmed(text);
      auto l = lower(t);
      if (l == "nan") {
        out.cls = 2;
        return out;
      }
      if (l == "infinity" || l == "+infinity" || l == "inf" || l == "+inf") {
        out.cls = 1;
        return out;
      }
      if (l == "-infinity" || l == "-inf") {
        out.cls = -1;
        return out;
      }
      std::size_t i = 0;
      if (i < t.size() && (t[i] == '+' || t[i] == '-'))
        out.negative = t[i++] == '-';
      std::string digits;
      std::int64_t point = -1;  // digits before the decimal point
      bool any = false;
      for (; i < t.size(); ++i) {
        char c = t[i];
        if (c >= '0' && c <= '9') {
          digits.push_back(c);
          any = true;
        } else if (c == '.' && point < 0) {
          point = static_cast<std::int64_t>(digits.size());
        } else {
          break;
        }
      }
      if (!any)
        return bad("a number");
      if (point < 0)
        point = static_cast<std::int64_t>(digits.size());
      std::int64_t exp10 = 0;
      if (i < t.size() && (t[i] == 'e' || t[i] == 'E')) {
        auto rest = t.substr(i + 1);
        if (!rest.empty() && rest.front() == '+')
          rest.remove_prefix(1);
        auto [p, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), exp10);
        if (rest.empty() || ec != std::errc() || p != rest.data() + rest.size()
            || exp10 > 100'000 || exp10 < -100'000)
          return bad("a number");
        i = t.size();
      }
      if (i != t.size())
        return bad("a number");
      // Normalise to 0.digits × 10^exponent with no leading or trailing zeros.
      std::size_t lead = 0;
      while (lead < digits.size() && digits[lead] == '0')
        ++lead;
      digits.erase(0, lead);
      point -= static_cast<std::int64_t>(lead);
      while (!digits.empty() && digits.back() == '0')
        digits.pop_back();
      if (digits.empty()) {
        out.negative = false;  // -0 = 0
        out.exponent = 0;
      } else {
        out.exponent = point + exp10;
      }
      out.digits = std::move(digits);
      return out;
    }
    case type_class::text:
      out.text = text;
      return out;
    case type_class::bpchar: {
      // char(n) compares without its trailing blanks.
      std::string t = text;
      while (!t.empty() && t.back() == ' ')
        t.pop_back();
      out.text = std::move(t);
      return out;
    }
    case type_class::uuid: {
      std::string hex;
      auto t = trimmed(text);
      if (!t.empty() && t.front() == '{' && t.back() == '}')
        t = t.substr(1, t.size() - 2);
      for (char c : t) {
        if (c == '-')
          continue;
        if (!std::isxdigit(static_cast<unsigned char>(c)))
          return bad("a uuid");
        hex.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
      }
      if (hex.size() != 32)
        return bad("a uuid");
      out.text = std::move(hex);
      return out;
    }
    case type_class::date:
    case type_class::timestamp:
    case type_class::timestamptz: {
      std::string why;
      auto dt = parse_iso_datetime(text, why);
      if (!dt)
        return status::invalid_argument("'" + text + "' is " + why);
      out.cls = dt->cls;
      if (dt->cls != 0)
        return out;
      if (type == type_class::date) {
        if (dt->has_time)
          return bad("a date (YYYY-MM-DD, without a time)");
        out.integer = dt->days;
        return out;
      }
      // PostgreSQL's timestamps end in 294276 AD; microseconds fit int64 to there.
      if (dt->days > 106'000'000)
        return bad("a timestamp (it is out of range)");
      out.integer = dt->days * 86'400'000'000LL + dt->micros;
      // A timestamp ignores an offset, as PostgreSQL's input does; a
      // timestamptz is the instant the offset names.
      if (type == type_class::timestamptz) {
        if (!dt->has_offset)
          return filter_value
                   ? bad("a timestamptz with its UTC offset (e.g. '2024-01-01 00:00:00+00'); "
                         "without one PostgreSQL reads it in the session's TimeZone, which the "
                         "change stream cannot know")
                   : bad("a timestamptz with its UTC offset (is the DateStyle ISO?)");
        out.integer -= dt->offset_s * 1'000'000LL;
      }
      return out;
    }
  }
  return bad("a value of a filterable type");
}

int row_filter::compare(type_class type, const operand& a, const operand& b) {
  auto sign = [](auto x, auto y) { return x < y ? -1 : (y < x ? 1 : 0); };
  switch (type) {
    case type_class::boolean:
    case type_class::integer:
      return sign(a.integer, b.integer);
    case type_class::real:
      // PostgreSQL: NaN equals NaN and sorts above every other value.
      if (a.cls == 2 || b.cls == 2)
        return sign(a.cls == 2, b.cls == 2);
      return sign(a.real, b.real);
    case type_class::numeric: {
      if (a.cls != 0 || b.cls != 0)
        return sign(a.cls, b.cls);
      int sa = a.digits.empty() ? 0 : (a.negative ? -1 : 1);
      int sb = b.digits.empty() ? 0 : (b.negative ? -1 : 1);
      if (sa != sb || sa == 0)
        return sign(sa, sb);
      int magnitude = a.exponent != b.exponent ? sign(a.exponent, b.exponent)
                                               : sign(a.digits.compare(b.digits), 0);
      return sa * magnitude;
    }
    case type_class::text:
    case type_class::bpchar:
    case type_class::uuid:
      return sign(a.text.compare(b.text), 0);
    case type_class::date:
    case type_class::timestamp:
    case type_class::timestamptz:
      if (a.cls != 0 || b.cls != 0)
        return sign(a.cls, b.cls);
      return sign(a.integer, b.integer);
  }
  return 0;
}

result<row_filter> row_filter::compile(const std::vector<column_filter>& filters,
                                       const table_info& table) {
  row_filter out;
  const std::string shown = table.schema + "." + table.name;
  for (const auto& f : filters) {
    const auto* col = table.find(f.column);
    if (!col) {
      std::string known;
      for (const auto& c : table.columns)
        known += (known.empty() ? "" : ", ") + c.name;
      return status::invalid_argument("table " + shown + " has no column '" + f.column
                                      + "' to filter on; its columns are " + known);
    }
    term t;
    t.column = f.column;
    t.op = f.op;
    switch (col->type_oid) {
      case 16: t.type = type_class::boolean; break;
      case 20: case 21: case 23: t.type = type_class::integer; break;
      case 700: case 701: t.type = type_class::real; break;
      case 1700: t.type = type_class::numeric; break;
      case 25: case 1043: case 19: t.type = type_class::text; break;
      case 1042: t.type = type_class::bpchar; break;
      case 2950: t.type = type_class::uuid; break;
      case 1082: t.type = type_class::date; break;
      case 1114: t.type = type_class::timestamp; break;
      case 1184: t.type = type_class::timestamptz; break;
      default:
        return status::invalid_argument(
          "the filter on column '" + f.column + "' of " + shown + " (" + col->type_name
          + ") cannot be applied to the change stream: a realtime view filters on boolean, "
            "integer, real, numeric, text, uuid, date, timestamp and timestamptz columns; "
            "filter on another column, or make the view materialized");
    }
    bool range = f.op != filter_op::eq && f.op != filter_op::in;
    if (range && (t.type == type_class::text || t.type == type_class::bpchar)
        && !byte_ordered_collation(col->collation))
      return status::invalid_argument(
        "the filter " + f.column + " " + store::to_string(f.op) + " ... on " + shown
        + " compares text under collation '" + col->collation
        + "', whose order the change stream cannot reproduce; use = or in, or give the column "
          "COLLATE \"C\"");
    if (f.op == filter_op::in ? f.values.empty() : f.values.size() != 1)
      return status::invalid_argument(
        "the filter on column '" + f.column + "' has " + std::to_string(f.values.size())
        + " values; in takes one or more, the other comparisons exactly one");
    for (const auto& v : f.values) {
      auto parsed = parse(t.type, v, true);
      if (!parsed)
        return status::invalid_argument("the filter on column '" + f.column + "' of " + shown
                                        + " (" + col->type_name + "): "
                                        + parsed.error().message());
      t.values.push_back(std::move(parsed).value());
    }
    out.terms_.push_back(std::move(t));
  }
  return out;
}

std::vector<std::string> row_filter::columns() const {
  std::vector<std::string> out;
  for (const auto& t : terms_)
    if (std::find(out.begin(), out.end(), t.column) == out.end())
      out.push_back(t.column);
  return out;
}

result<filter_verdict> row_filter::evaluate(const relation& rel, const tuple_data& tuple) const {
  bool unknown = false;
  for (const auto& t : terms_) {
    const tuple_column* datum = nullptr;
    for (std::size_t i = 0; i < rel.columns.size() && i < tuple.size(); ++i)
      if (rel.columns[i].name == t.column)
        datum = &tuple[i];
    if (!datum || datum->kind == column_kind::unchanged_toast) {
      unknown = true;
      continue;
    }
    if (datum->kind == column_kind::null)
      return filter_verdict::no_match;  // NULL op x and NULL IN (...) are never true
    auto v = parse(t.type, datum->text);
    if (!v)
      return status::corruption("column '" + t.column + "' of " + rel.namespace_name + "."
                                + rel.name + " arrived as " + v.error().message());
    bool holds = false;
    for (const auto& want : t.values) {
      int c = compare(t.type, *v, want);
      switch (t.op) {
        case filter_op::eq:
        case filter_op::in: holds = holds || c == 0; break;
        case filter_op::lt: holds = c < 0; break;
        case filter_op::le: holds = c <= 0; break;
        case filter_op::gt: holds = c > 0; break;
        case filter_op::ge: holds = c >= 0; break;
      }
    }
    if (!holds)
      return filter_verdict::no_match;
  }
  return unknown ? filter_verdict::unknown : filter_verdict::match;
}

} // namespace syncmesh::connectors::postgres
