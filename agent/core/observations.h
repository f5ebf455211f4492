#pragma once
// What the sources observe about tills and the SET server, in the terms the
// detectors judge them by: the till roster's status, the answer of a
// network probe, the state of the server's own software.

#include <string_view>

namespace setdiag::agent {

enum class RosterStatus { kActive, kMothballed, kDeleted };
enum class ProbeResult { kNotProbed, kAnswers, kRefused, kNoAnswer };

const char* ProbeResultName(ProbeResult p);
// "ACTIVE" / "CLOSED_DOWN" / "DELETED" as SET stores them; unknown -> active.
RosterStatus ParseRosterStatus(std::string_view status);

struct ServerState {
  bool known = false;
  bool port_8090 = false;  // SOAP services, admin UI, till calls
  bool port_8091 = false;  // nginx file transport
  bool port_5432 = false;  // PostgreSQL (the name stays; the port is db_port)
  bool deployed = false;   // Set10.ear.deployed present
  bool deploy_failed = false;
  int db_port = 5432;  // server.port_db (follows set_db.port); last, for aggregate initialisers
};

}  // namespace setdiag::agent
