#include "engine/spec/secret_ref.h"

#include <cctype>
#include <vector>

#include "common/error.h"
#include "common/names.h"
#include "common/strings.h"

namespace ferry {

SecretRef parseSecretArg(const std::string& arg) {
  SecretRef r;
  std::string type;
  std::vector<std::string> parts = splitFields(arg, ',');
  r.name = parts[0];
  for (size_t i = 1; i < parts.size(); ++i) {
    const std::string& part = parts[i];
    size_t eq = part.find('=');
    std::string key = part.substr(0, eq), value = eq == std::string::npos ? "" : part.substr(eq + 1);
    if (key == "type" && !value.empty()) type = value;
    else if (key == "target" && !value.empty()) r.target = value;
    else throwInvalidInput("--secret " + arg + ": unknown option '" + part + "' (NAME,type=env[,target=VAR])");
  }
  validateName(r.name, "secret name");
  if (type != "env") {
    throwInvalidInput("--secret " + arg + ": only secrets as environment variables are built; write " +
                      r.name + ",type=env[,target=VAR]");
  }
  if (r.target.empty()) r.target = r.name;
  bool ok = !std::isdigit(static_cast<unsigned char>(r.target[0]));
  for (char c : r.target) ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '_');
  if (!ok) throwInvalidInput("--secret " + arg + ": target '" + r.target + "' is not an environment variable name");
  return r;
}

}  // namespace ferry
