#include "collector/commands/admin.h"

#include <sys/stat.h>

#include <cstdio>
#include <iostream>

#include "collector/commands/collector_schema.h"
#include "collector/store/storage.h"
#include "collector/tickets/tickets.h"
#include "common/clock.h"
#include "common/status.h"
#include "common/strings.h"

namespace setdiag::collector {
namespace {

int Failed(const absl::Status& st) {
  std::cerr << "setdiag-collector: " << st.message() << "\n";
  return 1;
}

int Usage(std::string_view command, std::string_view message) {
  std::cerr << "setdiag-collector " << command << ": " << message << "\n";
  return 2;
}

std::string KnownTariffs(const CollectorConfig& cfg) {
  std::string known;
  for (const auto& [tariff_name, policy] : cfg.tickets.tariffs)
    Append(&known, known.empty() ? "" : ", ", tariff_name);
  return known;
}

// A name from before names were checked (empty, a newline) is shown quoted
// and escaped; revoke or delete such a user by its id.
std::string Shown(const std::string& text) {
  if (IsValidIdentifier(text)) return text;
  std::string out = "\"";
  for (char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c < 0x20 || c == 0x7f) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02x", c);
      out += hex;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

// Usage errors of the user commands, before the database is touched; 0 when
// there are none.
int CheckUserUsage(const AdminCommands& c, const AdminArgs& a) {
  if (c.user_create->parsed()) {
    if (!IsValidIdentifier(a.name)) {
      return Usage("user create",
                   "--name must be 1..128 characters of [A-Za-z0-9._-] (the rule of store ids)");
    }
    if (a.role == "support" && c.user_partner->count() > 0) {
      return Usage("user create",
                   "--partner is for role partner; a support user sees every store (drop "
                   "--partner, or add --role partner)");
    }
    if (a.role == "partner" && a.partner.empty())
      return Usage("user create", "--partner is required for role partner");
    if (a.role == "partner" && !IsValidIdentifier(a.partner)) {
      return Usage("user create",
                   "--partner must be 1..128 characters of [A-Za-z0-9._-], as given to 'token "
                   "create --partner'");
    }
  }
  for (const auto& [command, verb] :
       {std::pair{c.user_revoke, "user revoke"}, std::pair{c.user_delete, "user delete"}}) {
    if (command->parsed() && a.user_id.empty() == a.name.empty())
      return Usage(verb, "give exactly one of --id or --name");
  }
  return 0;
}

int TokenCreate(sql::Db& db, const AdminArgs& a, Clock& clock) {
  if (!IsValidIdentifier(a.store) || !IsValidIdentifier(a.partner)) {
    return Usage("token create",
                 "--store and --partner must be 1..128 characters of [A-Za-z0-9._-] (the "
                 "agent's agent.store_id follows the same rule)");
  }
  auto t = CreateStoreToken(db, a.store, a.partner, clock.NowMs());
  if (!t.ok()) return Failed(t.status());
  std::cerr << "Token " << t->id << " for store " << a.store << " (partner " << a.partner
            << "). It is shown only this once; put it in the agent's token file.\n";
  std::cout << t->secret << "\n";
  return 0;
}

int TokenRevoke(sql::Db& db, const AdminArgs& a, Clock& clock) {
  if (a.token_id.empty() == a.store.empty())
    return Usage("token revoke", "give exactly one of --id or --store");
  auto n = RevokeStoreTokens(db, a.token_id, a.store, clock.NowMs());
  if (!n.ok()) return Failed(n.status());
  std::cout << "revoked " << *n << " token(s)\n";
  return *n > 0 ? 0 : 1;
}

int TokenList(sql::Db& db) {
  auto rows = ListStoreTokens(db);
  if (!rows.ok()) return Failed(rows.status());
  std::printf("%-10s %-12s %-16s %s\n", "ID", "STORE", "PARTNER", "STATE");
  for (const auto& r : *rows) {
    std::printf("%-10s %-12s %-16s %s\n", r.id.c_str(), r.store_id.c_str(), r.partner.c_str(),
                r.revoked_at_ms ? "revoked" : "active");
  }
  return 0;
}

int PartnerSet(sql::Db& db, const AdminArgs& a, const CollectorConfig& cfg, Clock& clock) {
  if (!IsValidIdentifier(a.partner))
    return Usage("partner set", "--name must be 1..128 characters of [A-Za-z0-9._-]");
  if (!cfg.tickets.tariffs.contains(a.tariff)) {
    return Usage("partner set", Cat("no tariff '", a.tariff, "' (known: ", KnownTariffs(cfg), ")"));
  }
  if (absl::Status st = SetPartnerTariff(db, a.partner, a.tariff, clock.NowMs()); !st.ok())
    return Failed(st);
  std::cout << "partner " << a.partner << ": tariff " << a.tariff << "\n";
  return 0;
}

int PartnerList(sql::Db& db, const CollectorConfig& cfg) {
  auto rows = ListPartners(db);
  if (!rows.ok()) return Failed(rows.status());
  std::printf("%-20s %-12s %s\n", "PARTNER", "TARIFF", "STORES");
  for (const auto& p : *rows) {
    const std::string tariff =
        p.tariff.empty() ? Cat(cfg.tickets.default_tariff, " (default)") : p.tariff;
    std::printf("%-20s %-12s %lld\n", p.partner.c_str(), tariff.c_str(),
                static_cast<long long>(p.stores));
  }
  return 0;
}

int UserCreate(sql::Db& db, const AdminArgs& a, const CollectorConfig& cfg, Clock& clock) {
  const Role role = a.role == "support" ? Role::kSupport : Role::kPartner;
  if (role == Role::kPartner) {
    auto known = PartnerIsKnown(db, a.partner);
    if (!known.ok()) return Failed(known.status());
    if (!*known) {
      return Usage("user create",
                   Cat("no partner '", a.partner,
                       "': no store has it and it has no tariff. Create it first with "
                       "'setdiag-collector partner set --name ",
                       a.partner, " --tariff T' (T: ", KnownTariffs(cfg),
                       "), or give its first store a token with 'token create --store S "
                       "--partner ",
                       a.partner, "'"));
    }
  }
  auto t = CreateUser(db, a.name, role, a.partner, clock.NowMs());
  if (!t.ok()) {
    Failed(t.status());
    return absl::IsInvalidArgument(t.status()) ? 2 : 1;
  }
  std::cerr << "User " << a.name << " (" << a.role << "). The API token is shown only this once.\n";
  std::cout << t->secret << "\n";
  return 0;
}

int UserList(sql::Db& db) {
  auto rows = ListUsers(db);
  if (!rows.ok()) return Failed(rows.status());
  std::printf("%-10s %-24s %-8s %-16s %s\n", "ID", "NAME", "ROLE", "PARTNER", "STATE");
  for (const auto& u : *rows) {
    std::printf("%-10s %-24s %-8s %-16s %s\n", u.id.c_str(), Shown(u.name).c_str(),
                u.role == Role::kSupport ? "support" : "partner",
                u.role == Role::kSupport ? "-" : Shown(u.partner).c_str(),
                u.revoked_at_ms ? "revoked" : "active");
  }
  return 0;
}

int UserRevokeOrDelete(sql::Db& db, const AdminArgs& a, bool revoke, Clock& clock) {
  auto n =
      revoke ? RevokeUser(db, a.user_id, a.name, clock.NowMs()) : DeleteUser(db, a.user_id, a.name);
  if (!n.ok()) return Failed(n.status());
  if (*n == 0) {
    std::cerr << "setdiag-collector user " << (revoke ? "revoke" : "delete") << ": no "
              << (revoke ? "active " : "") << "user with " << (a.user_id.empty() ? "name " : "id ")
              << (a.user_id.empty() ? a.name : a.user_id) << " (see 'user list')\n";
    return 1;
  }
  std::cout << (revoke ? "revoked " : "deleted ") << *n << " user(s)\n";
  return 0;
}

}  // namespace

bool AdminCommands::Parsed() const {
  return token->parsed() || user->parsed() || partner->parsed();
}

AdminCommands AddAdminCommands(CLI::App& app, AdminArgs& a) {
  AdminCommands c;
  c.token = app.add_subcommand("token", "Store tokens that agents authenticate with");
  c.token->require_subcommand(1);
  c.token_create = c.token->add_subcommand("create", "Create a token for a store; printed once");
  c.token_create->add_option("--store", a.store, "Store id (as in the agent's agent.store_id)")
      ->required();
  c.token_create->add_option("--partner", a.partner, "Partner that looks after the store")
      ->required();
  c.token_revoke =
      c.token->add_subcommand("revoke", "Revoke a token (effective at the next connect)");
  c.token_revoke->add_option("--id", a.token_id, "Token id from 'token list'");
  c.token_revoke->add_option("--store", a.store, "Revoke every token of this store");
  c.token_list = c.token->add_subcommand("list", "List tokens (ids only, never secrets)");

  c.user = app.add_subcommand("user", "People who use the admin API and the setdiag CLI");
  c.user->require_subcommand(1);
  c.user_create = c.user->add_subcommand("create", "Create a user; prints an API token once");
  c.user_create->add_option("--name", a.name, "User name")->required();
  c.user_create->add_option("--role", a.role, "support (sees all stores) or partner")
      ->check(CLI::IsMember({"support", "partner"}))
      ->capture_default_str();
  c.user_partner = c.user_create->add_option("--partner", a.partner,
                                             "Partner, for role partner (known: a store's "
                                             "partner, or one made with 'partner set')");
  c.user_list = c.user->add_subcommand("list", "List users (ids, names, roles; never tokens)");
  c.user_revoke =
      c.user->add_subcommand("revoke", "Revoke a user's API token (effective at its next request)");
  c.user_revoke->add_option("--id", a.user_id, "User id from 'user list'");
  c.user_revoke->add_option("--name", a.name, "User name");
  c.user_delete = c.user->add_subcommand("delete", "Delete a user (its name can be used again)");
  c.user_delete->add_option("--id", a.user_id, "User id from 'user list'");
  c.user_delete->add_option("--name", a.name, "User name");

  c.partner = app.add_subcommand("partner", "Partners and their support tariff (SLA policy)");
  c.partner->require_subcommand(1);
  c.partner_set = c.partner->add_subcommand(
      "set", "Set a partner's tariff (applies to tickets opened from now on)");
  c.partner_set->add_option("--name", a.partner, "Partner (as given to 'token create --partner')")
      ->required();
  c.partner_set
      ->add_option("--tariff", a.tariff, "expert, free, or a [tariffs.<name>] of the config")
      ->required();
  c.partner_list = c.partner->add_subcommand("list", "List partners, their tariff and stores");
  return c;
}

int RunAdminCommand(const AdminCommands& c, const AdminArgs& a, const CollectorConfig& cfg) {
  if (int rc = CheckUserUsage(c, a); rc != 0) return rc;
  auto db = OpenCollectorDb(cfg);
  if (!db.ok()) return Failed(db.status());
  SystemClock clock;
  if (c.token_create->parsed()) return TokenCreate(*db, a, clock);
  if (c.token_revoke->parsed()) return TokenRevoke(*db, a, clock);
  if (c.token_list->parsed()) return TokenList(*db);
  if (c.partner_set->parsed()) return PartnerSet(*db, a, cfg, clock);
  if (c.partner_list->parsed()) return PartnerList(*db, cfg);
  if (c.user_create->parsed()) return UserCreate(*db, a, cfg, clock);
  if (c.user_list->parsed()) return UserList(*db);
  if (c.user_revoke->parsed()) return UserRevokeOrDelete(*db, a, /*revoke=*/true, clock);
  if (c.user_delete->parsed()) return UserRevokeOrDelete(*db, a, /*revoke=*/false, clock);
  return 0;
}

}  // namespace setdiag::collector
