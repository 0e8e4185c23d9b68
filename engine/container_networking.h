// What the engine needs of the host's container network (the agent gives
// it one, over network/host_network.h; the engine alone has none, and
// refuses containers with an address). Kept here so the engine never
// depends on the network library.
#pragma once

#include <filesystem>
#include <string>

#include "engine/spec/oci_spec.h"

namespace ferry {

class ContainerNetworking {
 public:
  virtual ~ContainerNetworking() = default;
  // The container's network namespace with its interface at net's address
  // and MAC, routed on this host, its ports published here. Returns the
  // namespace's path. Throws Error when the host cannot (no network yet).
  // `locked`: as lock(), from before the address is reachable (a restore).
  virtual std::filesystem::path attach(const std::string& container, const NetworkSpec& net,
                                       bool locked) = 0;
  // Undoes attach; a no-op when nothing is attached.
  virtual void detach(const std::string& container) noexcept = 0;
  // Drops every packet in and out of the container's namespace (loopback
  // aside) until unlock: a frozen source's sockets then neither answer nor
  // reset while its copy restores elsewhere.
  virtual void lock(const std::string& container) = 0;
  virtual void unlock(const std::string& container) noexcept = 0;
  // As unlock, but throws when the lock stays (a restore that cannot let
  // its container's traffic through has failed).
  virtual void unlockOrThrow(const std::string& container) = 0;
};

}  // namespace ferry
