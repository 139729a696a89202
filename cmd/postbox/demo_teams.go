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
// a submission or a new message goes to) and puts the demo caseworker and
// team lead in every one, so what the insured person sends shows up in
// their team inbox (and the team lead can set a legal hold on it).
// Existing teams and memberships are kept (re-runs, PostgreSQL: look
// before inserting, since a failed INSERT aborts the transaction).
func seedDemoTeams(ctx context.Context, a *app, members ...string) error {
	var accounts []string
	for _, username := range members {
		acc, err := a.db.AccountByUsername(ctx, demoKasseID, username)
		if err != nil {
			return fmt.Errorf("demo teams: %w", err)
		}
		accounts = append(accounts, acc.ID)
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
			for _, id := range accounts {
				member, err := mtx.IsTeamMember(ctx, demoKasseID, team.ID, id)
				if err != nil {
					return err
				}
				if !member {
					if err := tx.AddTeamMember(ctx, demoKasseID, team.ID, id); err != nil {
						return err
					}
				}
			}
		}
		return nil
	})
}
