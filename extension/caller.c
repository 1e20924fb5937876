/*-------------------------------------------------------------------------
 *
 * caller.c
 *	  Who is calling: jobq's API functions are SECURITY DEFINER (they run as
 *	  the extension's owner, see sql/src/90_privileges.sql), so CURRENT_USER
 *	  inside them is the owner. These internal functions answer with the role
 *	  in effect outside any SECURITY DEFINER function instead: the session's
 *	  role after SET ROLE (which the sidecar uses per token). jobq records it
 *	  as a job's created_by and filters a producer's reads by it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"

#include "jobq.h"

PG_FUNCTION_INFO_V1(jobq_caller);
PG_FUNCTION_INFO_V1(jobq_caller_sees_all);

/*
 * jobq._caller() returns text: the name of the outer role
 * (GetOuterUserId: the role set by SET ROLE, else the session user).
 */
Datum
jobq_caller(PG_FUNCTION_ARGS)
{
	return jobq_caller_datum();
}

/* jobq._caller(), from C: a palloc'd text datum. */
Datum
jobq_caller_datum(void)
{
	return PointerGetDatum(cstring_to_text(GetUserNameFromId(GetOuterUserId(), false)));
}

/*
 * jobq._caller_sees_all() returns boolean: whether the outer role may read
 * every job, not only those it created: a superuser, or a role with the
 * privileges of jobq_admin.
 */
Datum
jobq_caller_sees_all(PG_FUNCTION_ARGS)
{
	Oid			outer = GetOuterUserId();
	Oid			admin = get_role_oid("jobq_admin", true);

	PG_RETURN_BOOL(superuser_arg(outer) ||
				   (OidIsValid(admin) && has_privs_of_role(outer, admin)));
}
