#pragma once

// The one place a Status becomes an HTTP status code.
#include "common/status.h"

namespace serve {

// 499 (client went away) never reaches a client; it is what metrics and logs record.
int httpStatusFor(const Status& status);

}  // namespace serve
