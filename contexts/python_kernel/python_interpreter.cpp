#include "python_interpreter.hpp"

#include <Python.h>

#include <pybind11_json/pybind11_json.hpp>

#include <utility>

#include "history_store.hpp"
#include "native_module.hpp"
#include "output_capture.hpp"
#include "sigint_control.hpp"

namespace kh::python_kernel {

namespace {

constexpr const char* variables_target = "kernel_host.variables";

// xeus 2.4.1 increments its (private, accessor-less) execution counter for every non-silent
// execute_request, while the protocol counts only store_history=true executions. Explicit
// template instantiation may name private members ([temp.spec.general]/6); this standard idiom
// gives before_dispatch() a pointer to the counter so it can compensate.
struct execution_count_tag {
    using type = int xeus::xinterpreter::*;
    friend type member_pointer(execution_count_tag);
};
template <class Tag, typename Tag::type Member>
struct member_access {
    friend typename Tag::type member_pointer(Tag) { return Member; }
};
template struct member_access<execution_count_tag, &xeus::xinterpreter::m_execution_count>;

}  // namespace

python_interpreter::python_interpreter(output_capture& output, history_store& history)
    : output_(output), history_(history) {
    xeus::register_interpreter(this);
    register_native_module();
}

python_interpreter::~python_interpreter() {
    // Python objects must be released with the GIL held (and only while Python is alive; the
    // server ends the process with std::exit, so this runs only on early start-up failures).
    if (Py_IsInitialized()) {
        idle_release_.reset();
        kernel_.release().dec_ref();
        sanitize_.release().dec_ref();
    }
}

python_interpreter& python_interpreter::instance() {
    return static_cast<python_interpreter&>(xeus::get_interpreter());
}

void python_interpreter::flush_output() { output_.flush(); }

void python_interpreter::set_thread_publisher(thread_publisher publisher) {
    thread_publisher_ = std::move(publisher);
}

void python_interpreter::publish_display(const std::string& msg_type, nl::json data,
                                         nl::json metadata, nl::json transient) {
    flush_output();
    if (std::this_thread::get_id() == main_thread_ || !thread_publisher_) {
        if (msg_type == "update_display_data") {
            update_display_data(std::move(data), std::move(metadata), std::move(transient));
        } else {
            display_data(std::move(data), std::move(metadata), std::move(transient));
        }
        return;
    }
    thread_publisher_(msg_type, nl::json{{"data", std::move(data)},
                                         {"metadata", std::move(metadata)},
                                         {"transient", std::move(transient)}});
}

void python_interpreter::publish_clear_output(bool wait) {
    flush_output();
    if (std::this_thread::get_id() == main_thread_ || !thread_publisher_) {
        clear_output(wait);
        return;
    }
    thread_publisher_("clear_output", nl::json{{"wait", wait}});
}

std::string python_interpreter::read_input(const std::string& prompt, bool password) {
    input_value_.clear();
    register_input_handler([this](const std::string& value) { input_value_ = value; });
    input_request(prompt, password);
    register_input_handler(nullptr);
    return std::move(input_value_);
}

void python_interpreter::before_dispatch(const xeus::xmessage& msg) {
    if (msg.header().value("msg_type", "") != "execute_request") {
        return;
    }
    const nl::json& content = msg.content();
    const bool silent = content.value("silent", false);
    const bool store_history = content.value("store_history", true);
    if (!silent && !store_history) {
        --(this->*member_pointer(execution_count_tag{}));  // xeus will increment it again
    }
}

nl::json python_interpreter::to_json(py::handle obj) {
    try {
        return pyjson::to_json(obj);
    } catch (const std::exception&) {
        PyErr_Clear();
        return pyjson::to_json(sanitize_(obj));
    }
}

void python_interpreter::discard_stale_interrupt() {
    // A SIGINT taken by a thread other than the main one (threads started by user code do not
    // block it) trips Python's handler while idle; drop that before running anything.
    if (PyErr_CheckSignals() != 0) {
        PyErr_Clear();
    }
}

nl::json python_interpreter::error_reply(const py::error_already_set& e) {
    std::string ename = "Exception";
    std::string evalue = e.what();
    try {
        ename = py::str(e.type().attr("__name__"));
        evalue = py::str(e.value());
    } catch (...) {
        PyErr_Clear();
    }
    return nl::json{{"status", "error"},
                    {"ename", ename},
                    {"evalue", evalue},
                    {"traceback", nl::json::array({ename + ": " + evalue})}};
}

template <class F>
nl::json python_interpreter::call_python(F&& f) {
    py::gil_scoped_acquire gil;
    discard_stale_interrupt();
    try {
        return to_json(f());
    } catch (py::error_already_set& e) {
        return error_reply(e);
    }
}

void python_interpreter::configure_impl() {
    // Called by xkernel on the main thread, which still holds the GIL from Py_Initialize.
    kernel_ = py::module_::import("kh_kernel.kernel");
    sanitize_ = kernel_.attr("sanitize");
    python_version_ = py::str(py::str("{}.{}.{}").format(
        *py::module_::import("sys").attr("version_info")[py::slice(0, 3, 1)]));
    comm_manager().register_comm_target(
        variables_target, [this](xeus::xcomm&& comm, xeus::xmessage request) {
            open_variables_comm(std::move(comm), std::move(request));
        });
    idle_release_ = std::make_unique<py::gil_scoped_release>();
}

nl::json python_interpreter::execute_request_impl(int execution_counter, const std::string& code,
                                                  bool silent, bool store_history,
                                                  nl::json user_expressions, bool allow_stdin) {
    py::gil_scoped_acquire gil;
    discard_stale_interrupt();
    purge_closed_comms();
    nl::json reply;
    std::optional<std::string> result_text;
    try {
        py::object user_exprs = pyjson::from_json(user_expressions);
        allow_sigint(true);  // user code, formatting and figures are interruptible
        py::tuple r = kernel_.attr("execute")(code, silent, store_history, user_exprs, allow_stdin,
                                              execution_counter);
        allow_sigint(false);
        reply = to_json(r[0]);
        if (!r[1].is_none()) {
            nl::json text = to_json(r[1]);
            if (text.is_string()) {
                result_text = text.get<std::string>();
            }
        }
    } catch (py::error_already_set& e) {
        // Only reached when the kernel's own Python code fails, e.g. an interrupt that lands
        // after user code finished.
        allow_sigint(false);
        reply = error_reply(e);
        flush_output();
        publish_execution_error(reply["ename"].get<std::string>(), reply["evalue"].get<std::string>(),
                                {reply["traceback"][0].get<std::string>()});
    }
    flush_output();
    if (store_history && !silent) {
        history_.record(execution_counter, code, std::move(result_text));
    }
    return reply;
}

nl::json python_interpreter::complete_request_impl(const std::string& code, int cursor_pos) {
    return call_python([&] { return kernel_.attr("complete")(code, cursor_pos); });
}

nl::json python_interpreter::inspect_request_impl(const std::string& code, int cursor_pos,
                                                  int detail_level) {
    return call_python([&] { return kernel_.attr("inspect")(code, cursor_pos, detail_level); });
}

nl::json python_interpreter::is_complete_request_impl(const std::string& code) {
    return call_python([&] { return kernel_.attr("is_complete")(code); });
}

nl::json python_interpreter::kernel_info_request_impl() {
    const std::string minor = python_version_.substr(0, python_version_.rfind('.'));
    nl::json language_info = {
        {"name", "python"},
        {"version", python_version_},
        {"mimetype", "text/x-python"},
        {"file_extension", ".py"},
        {"pygments_lexer", "ipython3"},
        {"codemirror_mode", {{"name", "ipython"}, {"version", 3}}},
        {"nbconvert_exporter", "python"},
    };
    return nl::json{
        {"status", "ok"},
        {"protocol_version", "5.3"},
        {"implementation", "kernel-host-python"},
        {"implementation_version", KH_KERNEL_VERSION},
        {"language_info", std::move(language_info)},
        {"banner", "kernel-host-python " KH_KERNEL_VERSION " (xeus + CPython " + python_version_ + ")"},
        {"help_links", nl::json::array({{{"text", "Python Reference"},
                                         {"url", "https://docs.python.org/" + minor + "/"}}})},
        {"debugger", false},
    };
}

void python_interpreter::shutdown_request_impl() {
    py::gil_scoped_acquire gil;
    discard_stale_interrupt();
    try {
        kernel_.attr("shutdown")();
    } catch (py::error_already_set& e) {
        PyErr_Clear();
    }
    flush_output();
}

void python_interpreter::purge_closed_comms() {
    for (const auto& id : closed_comms_) {
        comms_.remove_if([&](const xeus::xcomm& c) { return c.id() == id; });
    }
    closed_comms_.clear();
}

void python_interpreter::open_variables_comm(xeus::xcomm&& comm, xeus::xmessage request) {
    purge_closed_comms();
    comms_.push_back(std::move(comm));
    xeus::xcomm& c = comms_.back();
    c.on_message([this, &c](xeus::xmessage msg) { handle_variables_message(c, std::move(msg)); });
    // The comm cannot be destroyed inside its own close handler; it is removed later.
    c.on_close([this, id = c.id()](xeus::xmessage) { closed_comms_.push_back(id); });
    const nl::json& content = request.content();
    auto data = content.find("data");
    if (data != content.end() && data->is_object() && !data->empty()) {
        handle_variables_message(c, std::move(request));
    }
}

void python_interpreter::handle_variables_message(xeus::xcomm& comm, xeus::xmessage request) {
    nl::json data = request.content().value("data", nl::json::object());
    xeus::buffer_sequence buffers_in = std::move(request).buffers();
    nl::json reply;
    xeus::buffer_sequence buffers_out;
    {
        py::gil_scoped_acquire gil;
        discard_stale_interrupt();
        try {
            py::list buffers;
            for (auto& b : buffers_in) {
                buffers.append(py::cast(native_buffer{std::move(b)}));
            }
            py::tuple r = kernel_.attr("handle_variables")(pyjson::from_json(data), buffers);
            reply = to_json(r[0]);
            for (py::handle b : py::reinterpret_borrow<py::list>(r[1])) {
                Py_buffer view;
                if (PyObject_GetBuffer(b.ptr(), &view, PyBUF_C_CONTIGUOUS) != 0) {
                    throw py::error_already_set();
                }
                const char* p = static_cast<const char*>(view.buf);
                buffers_out.emplace_back(p, p + view.len);
                PyBuffer_Release(&view);
            }
        } catch (py::error_already_set& e) {
            reply = error_reply(e);
            reply.erase("traceback");
            buffers_out.clear();
            if (data.contains("request_id")) {
                reply["request_id"] = data["request_id"];
            }
        }
    }
    flush_output();
    comm.send(nl::json::object(), std::move(reply), std::move(buffers_out));
}

}  // namespace kh::python_kernel
