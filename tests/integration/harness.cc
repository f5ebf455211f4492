#include "tests/integration/harness.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace setdiag::testing {

namespace {
std::vector<char*> Argv(const std::vector<std::string>& argv) {
  std::vector<char*> out;
  for (const auto& a : argv) out.push_back(const_cast<char*>(a.c_str()));
  out.push_back(nullptr);
  return out;
}

// fork + exec with stdin from /dev/null and stdout/stderr to files (the same
// file for both when the paths are equal).
pid_t Spawn(const std::vector<std::string>& argv, const std::string& out_path,
            const std::string& err_path, bool append) {
  pid_t pid = fork();
  if (pid == 0) {
    int flags = O_WRONLY | O_CREAT | (append ? O_APPEND : O_TRUNC);
    int out = open(out_path.c_str(), flags, 0600);
    int err = err_path == out_path ? out : open(err_path.c_str(), flags, 0600);
    dup2(out, 1);
    dup2(err, 2);
    int devnull = open("/dev/null", O_RDONLY);
    dup2(devnull, 0);
    auto args = Argv(argv);
    execv(args[0], args.data());
    _exit(127);
  }
  return pid;
}
}  // namespace

CommandResult RunCommand(const std::vector<std::string>& argv) {
  std::string dir = MakeTempDir("cmd");
  std::string out_path = dir + "/out", err_path = dir + "/err";
  pid_t pid = Spawn(argv, out_path, err_path, /*append=*/false);
  int status = 0;
  waitpid(pid, &status, 0);
  CommandResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = ReadFile(out_path);
  r.err = ReadFile(err_path);
  std::filesystem::remove_all(dir);
  return r;
}

Process::Process(std::vector<std::string> argv, std::string log_path)
    : log_path_(std::move(log_path)) {
  pid_ = Spawn(argv, log_path_, log_path_, /*append=*/true);
}

Process::~Process() {
  if (!reaped_) Kill();
}

void Process::Signal(int sig) {
  if (!reaped_) ::kill(pid_, sig);
}

void Process::Kill() {
  if (reaped_) return;
  ::kill(pid_, SIGKILL);
  waitpid(pid_, &status_, 0);
  reaped_ = true;
}

int Process::Stop() {
  if (!reaped_) {
    ::kill(pid_, SIGTERM);
    waitpid(pid_, &status_, 0);
    reaped_ = true;
  }
  return WIFEXITED(status_) ? WEXITSTATUS(status_) : 128 + WTERMSIG(status_);
}

bool Process::Running() {
  if (reaped_) return false;
  pid_t r = waitpid(pid_, &status_, WNOHANG);
  if (r == pid_) reaped_ = true;
  return !reaped_;
}

std::string Process::Log() const { return ReadFile(log_path_); }

std::vector<nlohmann::json> FindEvents(const nlohmann::json& events, const std::string& kind,
                                       const std::string& state) {
  std::vector<nlohmann::json> out;
  for (const auto& e : events) {
    if (e["kind"] == kind && e["payload"].value("state", "") == state) out.push_back(e);
  }
  return out;
}

CommandResult SimCtl(int control_port, const std::vector<std::string>& args) {
  std::vector<std::string> argv{SETDIAG_STORE_SIM_BIN, "ctl", "--control",
                                "127.0.0.1:" + std::to_string(control_port)};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCommand(argv);
}

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  int port = ntohs(addr.sin_port);
  close(fd);
  return port;
}

void WriteIncompressibleLog(const std::string& path, size_t bytes, uint64_t seed) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  std::mt19937_64 rng(seed);
  static const char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string line(128, '\n');
  for (size_t written = 0; written < bytes; written += line.size()) {
    for (size_t i = 0; i + 1 < line.size(); i += 8) {
      uint64_t r = rng();
      for (size_t k = 0; k < 8 && i + k + 1 < line.size(); ++k)
        line[i + k] = kAlphabet[(r >> (k * 6)) & 63];
    }
    out.write(line.data(), static_cast<std::streamsize>(line.size()));
  }
}

ProcSample SampleProcess(pid_t pid) {
  ProcSample s;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(stat, line);
  auto close_paren = line.rfind(')');
  if (close_paren == std::string::npos) return s;
  std::istringstream rest(line.substr(close_paren + 2));
  std::string field;
  long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stol(field);
    if (i == 15) stime = std::stol(field);
  }
  s.cpu_s = static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  while (std::getline(status, line)) {
    if (line.starts_with("VmRSS:")) s.rss_kib = std::stol(line.substr(6));
    if (line.starts_with("VmHWM:")) s.hwm_kib = std::stol(line.substr(6));
  }
  return s;
}

std::string MakeTempDir(const std::string& name) {
  std::string templ = "/tmp/setdiag-it-" + name + "-XXXXXX";
  if (!mkdtemp(templ.data())) throw std::runtime_error("mkdtemp failed");
  return templ;
}

void WriteFile(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int SlowBuildFactor() {
#ifdef SETDIAG_SANITIZED
  return 4;
#else
  return 1;
#endif
}

std::string AgentCheckTimeout() { return std::to_string(5 * SlowBuildFactor()); }

bool WaitFor(const std::function<bool()>& pred, std::chrono::milliseconds timeout,
             std::chrono::milliseconds every) {
  auto deadline = std::chrono::steady_clock::now() + timeout * SlowBuildFactor();
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(every);
  }
  return pred();
}

Deployment::Deployment(const std::string& name, std::string extra_collector_config)
    : dir_(MakeTempDir(name)), grpc_port_(FreePort()), http_port_(FreePort()) {
  std::ostringstream cfg;
  cfg << "[collector]\ndata_dir = \"" << dir_ << "/collector\"\nlog_level = \"debug\"\n"
      << "[grpc]\nlisten = \"127.0.0.1:" << grpc_port_ << "\"\n"
      << extra_collector_config << "\n"
      << "[http]\nlisten = \"127.0.0.1:" << http_port_ << "\"\n"
      << "[ingest]\nstatus_interval = \"1s\"\n";
  WriteFile(collector_config(), cfg.str());
  support_token_ = CreateUser("support-desk", "support");
}

Deployment::~Deployment() {
  for (auto& a : agents_) a->process.reset();
  collector_.reset();
  if (std::getenv("SETDIAG_KEEP_TEST_DIRS") == nullptr) std::filesystem::remove_all(dir_);
}

void Deployment::StartCollector() {
  collector_ = std::make_unique<Process>(
      std::vector<std::string>{SETDIAG_COLLECTOR_BIN, "--config", collector_config()},
      dir_ + "/collector.log");
  if (!WaitFor([&] { return CollectorHealthy(); }, std::chrono::seconds(20))) {
    throw std::runtime_error("collector did not become healthy: " + collector_->Log());
  }
}

void Deployment::KillCollector() {
  if (collector_) collector_->Kill();
}

void Deployment::StopCollector() {
  if (collector_) collector_->Stop();
}

bool Deployment::CollectorHealthy() {
  auto r = Cli({"agents", "list"});
  return r.exit_code == 0;
}

std::string Deployment::CreateStoreToken(const std::string& store, const std::string& partner) {
  auto r = RunCommand({SETDIAG_COLLECTOR_BIN, "--config", collector_config(), "token", "create",
                       "--store", store, "--partner", partner});
  if (r.exit_code != 0) throw std::runtime_error("token create failed: " + r.err);
  while (!r.out.empty() && r.out.back() == '\n') r.out.pop_back();
  return r.out;
}

std::string Deployment::CreateUser(const std::string& name, const std::string& role,
                                   const std::string& partner) {
  std::vector<std::string> args{SETDIAG_COLLECTOR_BIN,
                                "--config",
                                collector_config(),
                                "user",
                                "create",
                                "--name",
                                name,
                                "--role",
                                role};
  if (!partner.empty()) {
    args.push_back("--partner");
    args.push_back(partner);
  }
  auto r = RunCommand(args);
  if (r.exit_code != 0) throw std::runtime_error("user create failed: " + r.err);
  while (!r.out.empty() && r.out.back() == '\n') r.out.pop_back();
  return r.out;
}

AgentSetup& Deployment::AddAgent(const std::string& store, const std::string& token,
                                 const std::string& extra,
                                 std::optional<std::string> claimed_store) {
  auto a = std::make_unique<AgentSetup>();
  std::string n = std::to_string(agents_.size());
  a->store_id = store;
  a->state_dir = dir_ + "/agent" + n;
  a->config_path = dir_ + "/agent" + n + ".toml";
  a->log_path = dir_ + "/agent" + n + ".log";
  std::string token_path = dir_ + "/agent" + n + ".token";
  WriteFile(token_path, token + "\n");
  chmod(token_path.c_str(), 0600);  // the agent refuses a token others can read
  std::ostringstream cfg;
  cfg << "[agent]\nstore_id = \"" << claimed_store.value_or(store) << "\"\nstate_dir = \""
      << a->state_dir << "\"\nlog_level = \"debug\"\nstatus_interval = \"1s\"\n"
      << "[collector]\naddress = \"127.0.0.1:" << grpc_port_ << "\"\ntoken_file = \"" << token_path
      << "\"\n"
      << "[backoff]\ninitial = \"100ms\"\nmax = \"500ms\"\noverloaded_min = \"200ms\"\n"
      << extra << "\n";
  // These tests are about the link: no till watch unless the test asks.
  if (extra.find("[tills]") == std::string::npos) cfg << "[tills]\nenabled = false\n";
  WriteFile(a->config_path, cfg.str());
  agents_.push_back(std::move(a));
  return *agents_.back();
}

void Deployment::StartAgent(AgentSetup& a) {
  a.process = std::make_unique<Process>(
      std::vector<std::string>{SETDIAG_AGENT_BIN, "--config", a.config_path}, a.log_path);
}

void Deployment::Emit(AgentSetup& a, const std::string& kind, const std::string& severity,
                      int count, const std::string& payload) {
  auto r =
      RunCommand({SETDIAG_AGENT_BIN, "--config", a.config_path, "emit", "--kind", kind,
                  "--severity", severity, "--count", std::to_string(count), "--payload", payload});
  if (r.exit_code != 0) throw std::runtime_error("emit failed: " + r.err);
}

nlohmann::json Deployment::AgentStatus(AgentSetup& a) {
  auto r = RunCommand({SETDIAG_AGENT_BIN, "--config", a.config_path, "status"});
  if (r.exit_code != 0) throw std::runtime_error("agent status failed: " + r.err);
  return nlohmann::json::parse(r.out);
}

CommandResult Deployment::Cli(std::vector<std::string> args, const std::string& token) {
  std::vector<std::string> argv{SETDIAG_CLI_BIN, "--collector",
                                "http://127.0.0.1:" + std::to_string(http_port_), "--token",
                                token.empty() ? support_token_ : token};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCommand(argv);
}

nlohmann::json Deployment::Events(const std::string& store, const std::string& token) {
  auto r = Cli({"--json", "events", "list", "--all", "--limit", "10000", "--store", store}, token);
  if (r.exit_code != 0) throw std::runtime_error("setdiag events list failed: " + r.err);
  return nlohmann::json::parse(r.out)["events"];
}

size_t Deployment::EventCount(const std::string& store) { return Events(store).size(); }

void MakeTestPki(const std::string& dir, const std::string& dns_name) {
  auto run = [](const std::vector<std::string>& argv) {
    CommandResult r = RunCommand(argv);
    if (r.exit_code != 0) throw std::runtime_error("openssl failed: " + r.err);
  };
  run({"/usr/bin/openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
       "/CN=setdiag test CA", "-keyout", dir + "/ca.key", "-out", dir + "/ca.pem"});
  run({"/usr/bin/openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=" + dns_name,
       "-keyout", dir + "/server.key", "-out", dir + "/server.csr"});
  WriteFile(dir + "/ext.cnf", "subjectAltName=DNS:" + dns_name + "\n");
  run({"/usr/bin/openssl", "x509", "-req", "-in", dir + "/server.csr", "-CA", dir + "/ca.pem",
       "-CAkey", dir + "/ca.key", "-CAcreateserial", "-days", "2", "-extfile", dir + "/ext.cnf",
       "-out", dir + "/server.pem"});
}

bool HelloHeld(const std::string& agent_log, const std::string& held) {
  std::istringstream lines(agent_log);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.find("hello: holding") != std::string::npos && line.find(held) != std::string::npos)
      return true;
  }
  return false;
}

}  // namespace setdiag::testing
