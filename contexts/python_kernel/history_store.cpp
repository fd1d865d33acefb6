#include "history_store.hpp"

#include <fnmatch.h>

#include <algorithm>
#include <set>

namespace kh::python_kernel {

void history_store::record(int line, std::string input, std::optional<std::string> output) {
    entries_.push_back({line, std::move(input), std::move(output)});
}

nl::json history_store::to_json(const entry& e, bool output) const {
    if (!output) {
        return nl::json::array({session_number, e.line, e.input});
    }
    nl::json out = e.output ? nl::json(*e.output) : nl::json(nullptr);
    return nl::json::array({session_number, e.line, nl::json::array({e.input, out})});
}

nl::json history_store::reply(nl::json history) {
    return nl::json{{"status", "ok"}, {"history", std::move(history)}};
}

nl::json history_store::get_tail_impl(int n, bool, bool output) const {
    nl::json history = nl::json::array();
    const auto count = std::min<std::size_t>(static_cast<std::size_t>(std::max(n, 0)), entries_.size());
    for (auto it = entries_.end() - static_cast<std::ptrdiff_t>(count); it != entries_.end(); ++it) {
        history.push_back(to_json(*it, output));
    }
    return reply(std::move(history));
}

nl::json history_store::get_range_impl(int session, int start, int stop, bool, bool output) const {
    nl::json history = nl::json::array();
    // Session 0 (or a negative offset) means the current session, as in IPython.
    if (session > 0 && session != session_number) {
        return reply(std::move(history));
    }
    for (const auto& e : entries_) {
        if (e.line >= start && (stop <= 0 || e.line < stop)) {
            history.push_back(to_json(e, output));
        }
    }
    return reply(std::move(history));
}

nl::json history_store::search_impl(const std::string& pattern, bool, bool output, int n,
                                    bool unique) const {
    // Newest first while collecting, so `unique` keeps the latest occurrence and `n` the latest n.
    std::vector<const entry*> hits;
    std::set<std::string> seen;
    for (auto it = entries_.rbegin(); it != entries_.rend(); ++it) {
        if (::fnmatch(pattern.c_str(), it->input.c_str(), 0) != 0) {
            continue;
        }
        if (unique && !seen.insert(it->input).second) {
            continue;
        }
        hits.push_back(&*it);
        if (n > 0 && static_cast<int>(hits.size()) >= n) {
            break;
        }
    }
    nl::json history = nl::json::array();
    for (auto it = hits.rbegin(); it != hits.rend(); ++it) {
        history.push_back(to_json(**it, output));
    }
    return reply(std::move(history));
}

}  // namespace kh::python_kernel
