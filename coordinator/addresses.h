// Addresses on the cluster network, as the coordinator hands them out
// (pure: the caller says what is in use). A new container gets the address
// it asked for when that is free, else the next free one after the last one
// given (round robin, so an address just released is not given again at
// once while peers may still remember it), wrapping around the range.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/ipv4.h"
#include "coordinator/state_store.h"

namespace ferry::coord {

// used: address -> the container holding it. Throws Error: kInvalidInput
// for an asked address outside the range, the range's own or broadcast
// address, or one in use (naming its holder); kPermanent when every address
// is in use.
Ipv4 pickAddress(const Cidr& network, const std::map<Ipv4, std::string>& used,
                 std::optional<Ipv4> asked, Ipv4 last);

// The published ports of `wanted` that another container on the same host
// publishes already: throws Error kInvalidInput naming the port and holder.
void checkPortsFree(const std::string& host, const std::vector<std::string>& wanted,
                    const std::vector<ContainerRow>& on_host, const std::string& except = "");

// Where each address lives: ip -> the name of its host. A container with
// two copies (mid-migration) is placed where it runs.
std::map<Ipv4, std::string> addressPlacement(const std::vector<ContainerRow>& rows);

// "tcp://10.1.0.2:7001" or "tcp://10.1.0.2" -> "10.1.0.2"; "" when it is
// not an IPv4 endpoint.
std::string endpointAddress(const std::string& endpoint);

}  // namespace ferry::coord
