package web

// Provider admins' user management (seed 001): the organisation's users
// with their statuses, inviting a user (the invitation mail is valid 720
// hours), sending it again and revoking it.

import (
	"errors"

	"github.com/gofiber/fiber/v2"

	"postbox/auth"
)

func (u *UI) mountProvider(app *fiber.App) {
	if u.o.Auth == nil {
		return
	}
	admin := RequireRole(auth.RoleProviderAdmin)
	app.Get("/verwaltung/benutzer", admin, u.providerUsers)
	app.Post("/verwaltung/benutzer", admin, u.providerInvite)
	app.Post("/verwaltung/benutzer/:id/erneut", admin, u.providerResend)
	app.Post("/verwaltung/benutzer/:id/widerrufen", admin, u.providerRevoke)
}

type providerData struct {
	Users []auth.ProviderUser
	Form  auth.Invitation
}

func (u *UI) providerView(c *fiber.Ctx) (*view, *providerData, error) {
	users, err := u.o.Auth.ListOrgUsers(c.UserContext(), MustPrincipal(c))
	if errors.Is(err, auth.ErrNotAllowed) {
		return nil, nil, fiber.ErrNotFound
	}
	if err != nil {
		return nil, nil, err
	}
	v := u.baseView(c, "Benutzer Ihrer Einrichtung")
	d := &providerData{Users: users}
	v.Data = d
	return v, d, nil
}

func (u *UI) providerUsers(c *fiber.Ctx) error {
	v, _, err := u.providerView(c)
	if err != nil {
		return err
	}
	return u.render(c, fiber.StatusOK, "provider_users", v)
}

func (u *UI) providerInvite(c *fiber.Ctx) error {
	inv := auth.Invitation{Salutation: c.FormValue("salutation"), GivenName: c.FormValue("given_name"),
		FamilyName: c.FormValue("family_name"), Email: c.FormValue("email")}
	_, err := u.o.Auth.InviteUser(c.UserContext(), uiMeta(c), MustPrincipal(c), inv)
	if err == nil {
		return c.Redirect("/verwaltung/benutzer?hinweis=eingeladen", fiber.StatusSeeOther)
	}
	return u.providerFailed(c, err, "email", &inv)
}

func (u *UI) providerResend(c *fiber.Ctx) error {
	err := u.o.Auth.ResendInvitation(c.UserContext(), uiMeta(c), MustPrincipal(c), c.Params("id"))
	if err == nil {
		return c.Redirect("/verwaltung/benutzer?hinweis=erneut-eingeladen", fiber.StatusSeeOther)
	}
	return u.providerFailed(c, err, "liste", nil)
}

func (u *UI) providerRevoke(c *fiber.Ctx) error {
	err := u.o.Auth.RevokeInvitation(c.UserContext(), uiMeta(c), MustPrincipal(c), c.Params("id"))
	if err == nil {
		return c.Redirect("/verwaltung/benutzer?hinweis=widerrufen", fiber.StatusSeeOther)
	}
	return u.providerFailed(c, err, "liste", nil)
}

func (u *UI) providerFailed(c *fiber.Ctx, err error, field string, inv *auth.Invitation) error {
	if errors.Is(err, auth.ErrNotAllowed) {
		return fiber.ErrNotFound
	}
	errs, status, ok := authErrors(err, field)
	if !ok {
		return err
	}
	v, d, verr := u.providerView(c)
	if verr != nil {
		return verr
	}
	if inv != nil {
		d.Form = *inv
	}
	v.Errors = errs
	return u.render(c, status, "provider_users", v)
}
