#include "cli/table.hpp"

#include <algorithm>

namespace syncmesh::cli {

void print_table(std::ostream& out, const std::vector<std::string>& header,
                 const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> width(header.size(), 0);
  auto measure = [&](const std::vector<std::string>& r) {
    for (std::size_t i = 0; i < r.size() && i < width.size(); ++i)
      width[i] = std::max(width[i], r[i].size());
  };
  measure(header);
  for (const auto& r : rows)
    measure(r);
  auto print = [&](const std::vector<std::string>& r) {
    std::string line;
    for (std::size_t i = 0; i < width.size(); ++i) {
      auto cell = i < r.size() ? r[i] : "";
      line += cell;
      if (i + 1 < width.size())
        line += std::string(width[i] - cell.size() + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ')
      line.pop_back();
    out << line << "\n";
  };
  print(header);
  for (const auto& r : rows)
    print(r);
}

} // namespace syncmesh::cli
