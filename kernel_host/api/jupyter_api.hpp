#pragma once
// The Jupyter Server REST API over the same contexts: /api, /api/status, /api/kernelspecs,
// /kernelspecs/{name}/{file}, /api/kernels (+ interrupt, restart). A kernel is a context: one
// created by an agent is listed here and the reverse. /api/sessions, and the WebSocket /api/kernels/{id}/channels.

#include <filesystem>
#include <vector>

#include "kernel_host/api/kernel_channels.hpp"
#include "kernel_host/context_manager.hpp"
#include "kernel_host/notebook_session_manager.hpp"
#include "kernel_host/server/router.hpp"
#include "kernel_host/server/work_pool.hpp"

namespace kh::api {

void register_jupyter_api(server::router& routes, host::context_manager& contexts,
                          host::notebook_session_manager& sessions, server::work_pool& blocking,
                          std::vector<std::filesystem::path> data_path, iopub_limits limits = {});

}  // namespace kh::api
