/*
 * export_app.h — `realmfs-server export-app`: the app export as the server
 * now runs it, with what Development Mode learned (sync_schema.h) written
 * back into it, so that it can be deployed or served again.
 * docs/server.md ("export-app") is the operator's reference.
 */
#ifndef REALMFS_EXPORT_APP_H
#define REALMFS_EXPORT_APP_H

#include <stddef.h>

/*
 * Copy the app export in app_directory to out_directory (made when
 * missing, refused with -EEXIST when it exists and is not empty), every
 * file and directory as it is, except:
 *
 *   data_sources/<service>/<database>/<collection>/schema.json
 *       for each collection whose schema Development Mode created or
 *       extended (learned in data_directory), its whole schema
 *   sync/config.json
 *       "queryable_fields_names" with the fields Development Mode made
 *       queryable after the export's own, when there are any
 *
 * both written as pretty JSON with a 4-space indent (schemas with sorted
 * keys), as the App Services CLI writes them.  So with nothing learned the
 * copy is identical, and app_config_load of out_directory gives the
 * schemas and queryable fields the server runs with.
 *
 * 0, or a negative errno with a message naming the path and the problem:
 * -ENOENT (no app export or data directory), -EEXIST, -EINVAL (the
 * export, or what was learned, does not load), -ENOMEM, -EIO and the
 * like.  A failure may leave a partial copy in out_directory.
 */
int export_app_write(const char *app_directory, const char *data_directory,
                     const char *out_directory, char *message, size_t message_size);

#endif
