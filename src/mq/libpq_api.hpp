// libpq (PostgreSQL's client), loaded when the first postgres:// queue or inbox opens, as SQLite,
// hiredis and rabbitmq-c are (common/shared_library.hpp): processes that never use PostgreSQL never
// map it.
#pragma once

#include <libpq-fe.h>

#include "common/shared_library.hpp"

// Every libpq function clutch calls; each becomes a member of LibpqApi of the same name.
#define CLUTCH_LIBPQ_FUNCTIONS(X) \
  X(PQclear)                      \
  X(PQcmdTuples)                  \
  X(PQconnectdbParams)            \
  X(PQerrorMessage)               \
  X(PQexec)                       \
  X(PQexecParams)                 \
  X(PQconsumeInput)               \
  X(PQexecPrepared)               \
  X(PQfinish)                     \
  X(PQfreemem)                    \
  X(PQgetisnull)                  \
  X(PQgetlength)                  \
  X(PQgetvalue)                   \
  X(PQnotifies)                   \
  X(PQntuples)                    \
  X(PQprepare)                    \
  X(PQresultErrorMessage)         \
  X(PQresultStatus)               \
  X(PQsetNoticeProcessor)         \
  X(PQsocket)                     \
  X(PQstatus)                     \
  X(PQtransactionStatus)

namespace clutch::mq {

CLUTCH_SHARED_LIBRARY(LibpqApi, CLUTCH_LIBPQ_FUNCTIONS, libpq_api)

}  // namespace clutch::mq
