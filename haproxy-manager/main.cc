// haproxy-manager: wires the command line to the app; see app/cli.cc.
#include <string>
#include <vector>

#include "haproxy-manager/app/cli.h"

int main(int argc, char** argv) {
  return serve::manager::runCli(std::vector<std::string>(argv + 1, argv + argc));
}
