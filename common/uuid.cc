#include "common/uuid.h"

#include <uuid/uuid.h>

namespace serve {

std::string uuidV4() {
  uuid_t id;
  uuid_generate_random(id);
  char text[37];
  uuid_unparse_lower(id, text);
  return text;
}

}  // namespace serve
