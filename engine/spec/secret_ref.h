// How a container refers to a secret of its host's store (--secret).
#pragma once

#include <string>

namespace ferry {

// A container's use of a secret: --secret NAME[,type=env][,target=VAR].
struct SecretRef {
  std::string name;
  std::string target;  // the environment variable; NAME when not given
};

// Parses --secret. Only type=env is built (Podman's default, type=mount, is
// refused with what to write instead). Throws Error kInvalidInput.
SecretRef parseSecretArg(const std::string& arg);

}  // namespace ferry
