#pragma once

#include <functional>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include <pybind11/pybind11.h>
#include <xeus/xcomm.hpp>
#include <xeus/xinterpreter.hpp>

namespace kh::python_kernel {

namespace py = pybind11;
namespace nl = nlohmann;

class history_store;
class output_capture;

// The xeus interpreter of kernel-host-python. It owns no Python logic: each request is forwarded
// to kh_kernel.kernel (embedded Python, see kh_kernel/kernel.py), which publishes outputs
// through the native module (native_module.cpp) back into this class.
//
// Threading: everything runs on the main thread, which holds the GIL only while handling a
// request; Python threads run between requests. SIGINT is unblocked only while user code runs
// (sigint_control.hpp).
class python_interpreter final : public xeus::xinterpreter {
public:
    python_interpreter(output_capture& output, history_store& history);
    ~python_interpreter() override;

    // The interpreter registered with xeus (for the native module's free functions).
    static python_interpreter& instance();

    // Forwards what was written to fds 1 and 2 so far (keeps streams before rich outputs).
    void flush_output();

    // Publishing for the native module. On the main thread the message goes through xeus (parent:
    // the request being handled); a Python thread must not touch xeus' request state, so its
    // messages go through `thread_publisher` (parent: the last request that ran user code).
    using thread_publisher = std::function<void(const std::string& msg_type, nl::json content)>;
    void set_thread_publisher(thread_publisher publisher);
    void publish_display(const std::string& msg_type, nl::json data, nl::json metadata,
                         nl::json transient);
    void publish_clear_output(bool wait);

    // input()/getpass() over the stdin channel; called with the GIL released.
    std::string read_input(const std::string& prompt, bool password);

    // Called by the server before xeus dispatches a shell message (see kernel_server.hpp).
    void before_dispatch(const xeus::xmessage& msg);

    // Converts a Python object to JSON, replacing what JSON cannot hold (lone surrogates,
    // tuples, numpy scalars, unknown objects) instead of failing. Needs the GIL.
    nl::json to_json(py::handle obj);

private:
    void configure_impl() override;
    nl::json execute_request_impl(int execution_counter, const std::string& code, bool silent,
                                  bool store_history, nl::json user_expressions,
                                  bool allow_stdin) override;
    nl::json complete_request_impl(const std::string& code, int cursor_pos) override;
    nl::json inspect_request_impl(const std::string& code, int cursor_pos, int detail_level) override;
    nl::json is_complete_request_impl(const std::string& code) override;
    nl::json kernel_info_request_impl() override;
    void shutdown_request_impl() override;

    // Runs a Python call that returns a JSON-able reply; Python exceptions become an error reply.
    template <class F>
    nl::json call_python(F&& f);
    static nl::json error_reply(const py::error_already_set& e);
    static void discard_stale_interrupt();

    // The comm target `kernel_host.variables` (protocol: README.md in this folder, and the
    // docstring of kh_kernel/variables.py). In short: the host sends {"set": {name: json},
    // "arrays": {name: {"dtype", "shape", "buffer"}}, "delete": [...], "get": [...],
    // "get_format": "buffers"|"json", "request_id"} as comm_open or comm_msg data, with binary
    // buffers for the arrays (viewed in place by numpy: no copy); the kernel answers each request
    // with one comm_msg {"status": "ok", "values", "arrays", "missing", "errors", ...} plus one
    // buffer per returned array, or {"status": "error", "ename", "evalue"} with nothing applied.
    void open_variables_comm(xeus::xcomm&& comm, xeus::xmessage request);
    void handle_variables_message(xeus::xcomm& comm, xeus::xmessage request);
    void purge_closed_comms();

    output_capture& output_;
    history_store& history_;
    py::object kernel_;  // the kh_kernel.kernel module
    py::object sanitize_;
    std::string python_version_;
    std::unique_ptr<py::gil_scoped_release> idle_release_;
    std::list<xeus::xcomm> comms_;
    std::list<xeus::xguid> closed_comms_;
    std::string input_value_;
    std::thread::id main_thread_ = std::this_thread::get_id();
    thread_publisher thread_publisher_;
};

}  // namespace kh::python_kernel
