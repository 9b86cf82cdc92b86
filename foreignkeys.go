package pluginhost

import (
	"context"
	"fmt"
)

// checkForeignKeys makes sure that the foreign keys p declares are
// enforced. PostgreSQL always enforces them; SQLite only on connections
// that turned them on (PRAGMA foreign_keys, the DSN option _foreign_keys=1
// of mattn/go-sqlite3), and without it a dangling row goes in silently.
// When a declared foreign key is not enforced on the session's connection,
// it returns an error naming the DSN option and records it on the session,
// which fails the bring-up (Start or Enable), unless
// Config.AllowForeignKeysOff is set: then p gets a warning. The pragma is
// read once per session, and only when a plugin declares a foreign key.
func (s *schemaSession) checkForeignKeys(ctx context.Context, p *plugin, decl *declaration) error {
	if s.dialect != SQLite {
		return nil
	}
	fk := firstForeignKey(decl)
	if fk == "" {
		return nil
	}
	if s.foreignKeys == nil {
		var on int
		if err := s.conn.QueryRowContext(ctx, `PRAGMA foreign_keys`).Scan(&on); err != nil {
			return fmt.Errorf("read PRAGMA foreign_keys: %w", err)
		}
		enforced := on == 1
		s.foreignKeys = &enforced
	}
	if *s.foreignKeys {
		return nil
	}
	if s.m.cfg.AllowForeignKeysOff {
		s.m.plugins.addWarnings(p, fmt.Sprintf("its foreign keys (%s) are not enforced: the SQLite connection has PRAGMA foreign_keys = 0 and Config.AllowForeignKeysOff is set; open the database with _foreign_keys=1 in the DSN to enforce them", fk))
		return nil
	}
	err := fmt.Errorf("plugin %q declares foreign keys (%s), which this SQLite connection does not enforce (PRAGMA foreign_keys = 0), so a row could reference one that does not exist: open the database with _foreign_keys=1 in the DSN, as in sql.Open(\"sqlite3\", \"file:app.db?_foreign_keys=1\"), or set Config.AllowForeignKeysOff to start without enforcement",
		p.id, fk)
	if s.misconfigured == nil {
		s.misconfigured = err
	}
	return err
}

// firstForeignKey describes the first foreign key decl declares, "" when
// it declares none.
func firstForeignKey(decl *declaration) string {
	for i := range decl.schema.Tables {
		t := &decl.schema.Tables[i]
		for _, c := range t.Columns {
			if c.References != nil {
				return fmt.Sprintf("table %q column %q references %q", t.Name, c.Name, c.References.Table+"."+c.References.Column)
			}
		}
	}
	return ""
}
