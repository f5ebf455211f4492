#pragma once
// `setdiag-store-sim run`: one store. Threads:
//   - the I/O thread serves the control API, the probe listeners and signals;
//   - the caller's thread runs the tick loop: database writes and pushes;
//   - the goods loop (goods.h) plays the ERP, the server's import and the
//     tills' product loading on its own thread and connection; its SOAP
//     port and control routes are on the I/O thread.
// State changes from the control API take effect at once (probe listeners,
// pushes from the next tick on); the registry is written right away and
// last activity on the next tick.

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <memory>
#include <nlohmann/json.hpp>
#include <thread>

#include "absl/status/status.h"
#include "common/mutex.h"
#include "tools/store_sim/control_server.h"
#include "tools/store_sim/db_player.h"
#include "tools/store_sim/goods.h"
#include "tools/store_sim/heartbeat.h"
#include "tools/store_sim/options.h"
#include "tools/store_sim/probe.h"
#include "tools/store_sim/tills.h"

namespace setdiag::store_sim {

class Simulator {
 public:
  explicit Simulator(SimOptions options);
  ~Simulator();

  // Opens the probe listeners and the control API, starts the I/O thread and
  // installs SIGTERM/SIGINT handling. An error here is fatal.
  absl::Status Start();
  // The tick loop; returns after SIGTERM/SIGINT or RequestStop().
  void Run();
  void RequestStop();

 private:
  void RegisterRoutes();
  ControlResponse HandleAction(TillAction action, const ControlRequest& req);
  nlohmann::json StatusJson();  // I/O thread
  void Wake();
  void Shutdown();

  SimOptions opt_;
  TillBoard board_;
  boost::asio::io_context io_;
  ProbeListeners probes_;
  ControlServer control_;
  boost::asio::signal_set signals_;
  std::thread io_thread_;
  DbPlayer db_;
  HeartbeatPusher pusher_;
  GoodsSim goods_;
  std::atomic<bool> db_connected_{false};

  Mutex mu_;
  CondVar cv_;  // stop_ or wake_ changed
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool wake_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace setdiag::store_sim
