#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace syncmesh::cli {

/// Prints rows as an aligned text table under a header, for people.
void print_table(std::ostream& out, const std::vector<std::string>& header,
                 const std::vector<std::vector<std::string>>& rows);

} // namespace syncmesh::cli
