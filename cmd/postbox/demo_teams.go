package main

import (
	"context"
	"errors"
	"fmt"

	"postbox/audit"
	"postbox/mailbox"
	"postbox/storage/sqldb"
)

// seedDemoTeams gives the demo Kasse a team inbox per Anliegen (the topic
// a submission or a new message goes to) and puts the demo caseworker in
// every one, so what the insured person sends shows up in "sachb"'s team
// inbox. Existing teams and memberships are kept (re-runs, PostgreSQL:
// look before inserting, since a failed INSERT aborts the transaction).
func seedDemoTeams(ctx context.Context, a *app, caseworker string) error {
	acc, err := a.db.AccountByUsername(ctx, demoKasseID, caseworker)
	if err != nil {
		return fmt.Errorf("demo teams: %w", err)
	}
	return a.db.InTx(ctx, func(tx *sqldb.Tx) error {
		mtx := tx.Mailbox()
		for _, ct := range audit.CaseTypes {
			team, err := mtx.TeamByTopic(ctx, demoKasseID, string(ct.Type))
			if errors.Is(err, mailbox.ErrNotFound) {
				team, err = tx.CreateTeam(ctx, mailbox.Team{TenantID: demoKasseID, Name: ct.Label, Topic: string(ct.Type)})
			}
			if err != nil {
				return fmt.Errorf("demo team %s: %w", ct.Type, err)
			}
			member, err := mtx.IsTeamMember(ctx, demoKasseID, team.ID, acc.ID)
			if err != nil {
				return err
			}
			if !member {
				if err := tx.AddTeamMember(ctx, demoKasseID, team.ID, acc.ID); err != nil {
					return err
				}
			}
		}
		return nil
	})
}
