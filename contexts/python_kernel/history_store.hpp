#pragma once

#include <optional>
#include <string>
#include <vector>

#include <xeus/xhistory_manager.hpp>

namespace kh::python_kernel {

// In-memory input history with IPython's reply shapes: entries are
// [session, line, input] or, with output=True, [session, line, [input, output-or-null]];
// `session` and `line` are numbers; ranges are by line number; search uses glob patterns.
//
// xeus' own manager is not used: it stores every input as line 1 (it reads a missing
// `execution_count` from the request) and returns numbers as strings. The interpreter calls
// record() with the real execution count; xeus' store_inputs() call is ignored.
class history_store final : public xeus::xhistory_manager {
public:
    static constexpr int session_number = 1;

    void record(int line, std::string input, std::optional<std::string> output);

private:
    struct entry {
        int line;
        std::string input;
        std::optional<std::string> output;
    };

    void configure_impl() override {}
    void store_inputs_impl(int, int, const std::string&, const std::string&) override {}
    nl::json get_tail_impl(int n, bool raw, bool output) const override;
    nl::json get_range_impl(int session, int start, int stop, bool raw, bool output) const override;
    nl::json search_impl(const std::string& pattern, bool raw, bool output, int n,
                         bool unique) const override;

    nl::json to_json(const entry& e, bool output) const;
    static nl::json reply(nl::json history);

    std::vector<entry> entries_;
};

}  // namespace kh::python_kernel
