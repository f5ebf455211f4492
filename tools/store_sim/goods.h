#pragma once
// The second critical business process, goods and prices loading, as a
// watcher on the store server sees it (docs/simulator.md, "Goods and
// prices"):
//   - an ERP sends an import package every --erp-every: a new TI in
//     set.erp_transport_package with status 2 "in process", and with
//     --inbox a catalog-goods_<n>.xml in the file exchange folder;
//   - the SET server processes each package after --process-delay: status 3
//     "correct" (or the failure the control API asked for), deletes the
//     inbox file and produces one product file per running till
//     (set.un_cg_product_file_for_cashes, cash_activity's not-loaded count);
//   - each running till loads its files after --load-delay
//     (set.cash_activity: lastproductsloaddate, notloadedproductscount,
//     lastprocessedid);
//   - the import web services' WSDL answers on --soap.
// Threads: the goods loop runs on its own thread with its own database
// connection; the control routes, status and the SOAP port run on the I/O
// thread.

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "absl/status/status.h"
#include "common/mutex.h"
#include "tools/store_sim/control_server.h"
#include "tools/store_sim/goods_board.h"
#include "tools/store_sim/goods_db.h"
#include "tools/store_sim/inbox.h"
#include "tools/store_sim/options.h"
#include "tools/store_sim/soap_stub.h"
#include "tools/store_sim/tills.h"

namespace setdiag::store_sim {

class GoodsSim {
 public:
  GoodsSim(const SimOptions& options, const TillBoard& tills, boost::asio::io_context& io);
  ~GoodsSim();

  // Prepares the inbox, opens the SOAP port and starts the goods loop.
  // Before the I/O thread runs. An error here is fatal.
  absl::Status Start();
  // The control knobs; each answers `status()` plus "action".
  void RegisterRoutes(ControlServer& control, std::function<nlohmann::json()> status_fn);
  // Adds erp, server, soap, inbox, transport and the tills' loading fields
  // to a status document made by the simulator. I/O thread.
  void AddStatus(nlohmann::json& status);
  // Asks the loop to end (any thread); Join() waits for it.
  void RequestStop();
  void Join();
  // Closes the SOAP port. I/O thread.
  void CloseSoap() { soap_.Close(); }

 private:
  using Steady = std::chrono::steady_clock;
  struct Pending {
    PendingPackage pkg;
    Steady::time_point due;
  };

  void Loop();
  // One pass: returns when the loop should look again at the latest.
  Steady::time_point Step();
  bool Reload();
  bool SendPackage();
  bool ProcessDue(Steady::time_point now);
  bool LoadDue(Steady::time_point now);
  void Wake();
  ControlResponse Reply(const std::string& action);

  const SimOptions& opt_;
  const TillBoard& till_board_;
  GoodsBoard board_;
  GoodsDb db_;
  Inbox inbox_;
  SoapStub soap_;
  std::function<nlohmann::json()> status_;
  std::thread thread_;
  std::atomic<bool> db_connected_{false};

  Mutex mu_;
  CondVar cv_;  // stop_ or wake_ changed
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool wake_ ABSL_GUARDED_BY(mu_) = false;

  // Goods loop thread only.
  int64_t seq_ = 0;  // last package number used
  uint64_t erp_generation_seen_ = UINT64_MAX;
  Steady::time_point next_send_;
  std::deque<Pending> pending_;
  std::map<int, Steady::time_point> load_since_;  // tills with files not loaded yet
  std::map<int, int64_t> max_file_id_;
  bool inbox_warned_ = false;
};

}  // namespace setdiag::store_sim
