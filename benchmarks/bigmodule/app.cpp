// app.cpp: a small log-analysis program written against the C++ standard
// library. Compiled with zig's libc++ for wasm32-wasi, it brings real-world
// library code into the compile-speed module: regex, iostreams and locale
// facets (narrow and wide), containers, algorithms and number formatting.
#include <algorithm>
#include <charconv>
#include <cstdint>
#include <deque>
#include <functional>
#include <iomanip>
#include <iostream>
#include <locale>
#include <map>
#include <numeric>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <unordered_map>
#include <variant>
#include <vector>

namespace {

struct Request {
    std::string method;
    std::string path;
    int status = 0;
    double seconds = 0.0;
    std::uint64_t bytes = 0;
};

using Field = std::variant<std::int64_t, double, std::string>;

std::optional<Request> parse_line(const std::string& line, const std::regex& pattern)
{
    std::smatch match;
    if (!std::regex_search(line, match, pattern))
        return std::nullopt;
    Request request;
    request.method = match[1];
    request.path = match[2];
    request.status = std::stoi(match[3]);
    request.bytes = std::stoull(match[4]);
    request.seconds = std::stod(match[5]);
    return request;
}

std::string describe(const Field& field)
{
    return std::visit(
        [](const auto& value) {
            std::ostringstream out;
            out << std::boolalpha << std::showpoint << value;
            return out.str();
        },
        field);
}

class Stats {
public:
    void add(const Request& request)
    {
        by_status_[request.status]++;
        auto& per_path = by_path_[request.path];
        per_path.push_back(request.seconds);
        methods_.insert(request.method);
        recent_.push_back(request);
        if (recent_.size() > 64)
            recent_.pop_front();
        total_bytes_ += request.bytes;
    }

    void report(std::ostream& out) const
    {
        out.imbue(std::locale::classic());
        out << std::left << std::setw(24) << "path" << std::right << std::setw(10) << "count"
            << std::setw(12) << "p50 (ms)" << std::setw(12) << "max (ms)" << '\n';
        for (const auto& [path, times] : by_path_) {
            std::vector<double> sorted(times);
            std::sort(sorted.begin(), sorted.end());
            double median = sorted[sorted.size() / 2] * 1e3;
            out << std::left << std::setw(24) << path << std::right << std::setw(10) << sorted.size()
                << std::fixed << std::setprecision(2) << std::setw(12) << median
                << std::setw(12) << sorted.back() * 1e3 << '\n';
        }
        for (const auto& [status, count] : by_status_)
            out << "status " << status << ": " << count << '\n';
        std::ostringstream methods;
        std::copy(methods_.begin(), methods_.end(), std::ostream_iterator<std::string>(methods, ","));
        out << "methods " << methods.str() << " bytes " << std::scientific << double(total_bytes_) << '\n';
    }

private:
    std::map<int, std::size_t> by_status_;
    std::unordered_map<std::string, std::vector<double>> by_path_;
    std::set<std::string> methods_;
    std::deque<Request> recent_;
    std::uint64_t total_bytes_ = 0;
};

std::wstring widen_report(const std::string& text)
{
    std::wostringstream out;
    out.imbue(std::locale::classic());
    for (char c : text)
        out << static_cast<wchar_t>(std::toupper(c, std::locale::classic()));
    out << L" (" << std::hex << text.size() << L")";
    return out.str();
}

}  // namespace

int main(int argc, char** argv)
{
    const std::regex pattern(R"((GET|POST|PUT|DELETE)\s+(\S+)\s+(\d{3})\s+(\d+)\s+([0-9.]+))",
                             std::regex::ECMAScript | std::regex::optimize);
    const std::wregex wide_word(L"[A-Z]+");
    Stats stats;
    std::string line;
    std::size_t rejected = 0;
    while (std::getline(std::cin, line)) {
        if (auto request = parse_line(line, pattern))
            stats.add(*request);
        else
            rejected++;
    }
    std::ostringstream report;
    stats.report(report);

    std::vector<Field> fields{std::int64_t{argc}, 0.5, std::string(argc > 0 ? argv[0] : "")};
    std::vector<std::string> described(fields.size());
    std::transform(fields.begin(), fields.end(), described.begin(), describe);
    std::function<std::size_t(std::size_t, const std::string&)> total_length =
        [](std::size_t sum, const std::string& s) { return sum + s.size(); };
    std::size_t length = std::accumulate(described.begin(), described.end(), std::size_t{0}, total_length);

    char buffer[64];
    auto result = std::to_chars(buffer, buffer + sizeof buffer, 1.0 / 3.0);
    std::wstring wide = widen_report(report.str());
    std::size_t words = std::distance(std::wsregex_iterator(wide.begin(), wide.end(), wide_word),
                                      std::wsregex_iterator());
    std::cout << report.str() << "rejected " << rejected << " words " << words << " length " << length
              << ' ' << std::string_view(buffer, static_cast<std::size_t>(result.ptr - buffer)) << std::endl;
    return 0;
}
