package web

import (
	"time"

	"github.com/gofiber/fiber/v2"

	"postbox/auth"
)

// Handlers of the own account, staff actions and provider user management.

func authSession(c *fiber.Ctx) auth.Session {
	sess, _, _ := SessionOf(c)
	return sess
}

func authTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.Format(time.RFC3339)
}

func (h *AuthAPI) me(c *fiber.Ctx) error {
	v, err := h.svc.Me(c.UserContext(), authSession(c))
	if err != nil {
		return AuthProblem(c, err)
	}
	return c.JSON(fiber.Map{"id": v.ID, "username": v.Username, "role": v.Role, "display_name": v.DisplayName, "email": v.Email,
		"email_pending": v.EmailPending, "mobile_hint": v.MobileHint, "mobile_change_pending": v.MobilePending, "security_question": v.SecurityQuestion,
		"consent_version": v.ConsentVersion, "consent_at": authTime(v.ConsentAt), "password_changed_at": authTime(v.PasswordChanged),
		"step_up_valid_until": authTime(v.StepUpValidUntil), "csrf_token": CSRFTokenOf(c)})
}

func (h *AuthAPI) logoutEverywhere(c *fiber.Ctx) error {
	n, err := h.svc.EndAllSessions(c.UserContext(), MustPrincipal(c), false, RequestID(c))
	if err != nil {
		return AuthProblem(c, err)
	}
	ClearSessionCookie(c)
	return c.JSON(fiber.Map{"sessions_ended": n})
}

func (h *AuthAPI) changePassword(c *fiber.Ctx) error {
	var in struct {
		Current  string `json:"current_password" form:"current_password"`
		Password string `json:"password" form:"password"`
	}
	if err := authParse(c, &in); err != nil {
		return authBadBody(c)
	}
	if err := h.svc.ChangePassword(c.UserContext(), authMeta(c), MustPrincipal(c), in.Current, in.Password); err != nil {
		return AuthProblem(c, err)
	}
	return c.JSON(fiber.Map{"password_changed": true})
}

func (h *AuthAPI) stepUpMTAN(c *fiber.Ctx) error {
	hint, err := h.svc.RequestStepUpMTAN(c.UserContext(), authMeta(c), authSession(c))
	if err != nil {
		return AuthProblem(c, err)
	}
	return c.JSON(fiber.Map{"mtan_sent": true, "mobile_hint": hint})
}

func (h *AuthAPI) stepUp(c *fiber.Ctx) error {
	var in struct {
		Method string `json:"method" form:"method"`
		Code   string `json:"code" form:"code"`
	}
	if err := authParse(c, &in); err != nil {
		return authBadBody(c)
	}
	if err := h.svc.StepUp(c.UserContext(), authMeta(c), authSession(c), in.Method, in.Code); err != nil {
		return AuthProblem(c, err)
	}
	return c.JSON(fiber.Map{"step_up": true, "valid_minutes": int(h.svc.Options().StepUpWindow.Minutes())})
}

func (h *AuthAPI) devices(c *fiber.Ctx) error {
	list, err := h.svc.ListDevices(c.UserContext(), MustPrincipal(c))
	if err != nil {
		return AuthProblem(c, err)
	}
	out := make([]fiber.Map, 0, len(list))
	for _, d := range list {
		out = append(out, fiber.Map{"id": d.ID, "name": d.Name, "status": d.StatusLabel, "added_at": authTime(d.AddedAt), "last_used_at": authTime(d.LastUsedAt)})
	}
	return c.JSON(fiber.Map{"devices": out})
}

func (h *AuthAPI) addDevice(c *fiber.Ctx) error {
	var in struct {
		Name string `json:"name" form:"name"`
	}
	if err := authParse(c, &in); err != nil {
		return authBadBody(c)
	}
	e, err := h.svc.AddDevice(c.UserContext(), authMeta(c), authSession(c), in.Name)
	if err != nil {
		return AuthProblem(c, err)
	}
	return c.Status(fiber.StatusCreated).JSON(authEnrollmentJSON(e))
}

func (h *AuthAPI) removeDevice(c *fiber.Ctx) error {
	if err := h.svc.RemoveDevice(c.UserContext(), authMeta(c), authSession(c), c.Params("id")); err != nil {
		return AuthProblem(c, err)
	}
	return c.SendStatus(fiber.StatusNoContent)
}

func (h *AuthAPI) changeMobile(c *fiber.Ctx) error {
	var in struct {
		Mobile string `json:"mobile" form:"mobile"`
	}
	if err := authParse(c, &in); err != nil {
		return authBadBody(c)
	}
	if err := h.svc.RequestMobileChange(c.UserContext(), authMeta(c), authSession(c), in.Mobile); err != nil {
		return AuthProblem(c, err)
	}
	return c.JSON(fiber.Map{"codes_sent": true, "hinweis": "Wir haben je einen Code an Ihre bisherige und an Ihre neue Mobilnummer geschickt."})
}

func (h *AuthAPI) confirmMobile(c *fiber.Ctx) error {
	var in struct {
		CodeOld string `json:"code_old" form:"code_old"`
		CodeNew string `json:"code_new" form:"code_new"`
	}
	if err := authParse(c, &in); err != nil {
		return authBadBody(c)
	}
	if err := h.svc.ConfirmMobileChange(c.UserContext(), authMeta(c), authSession(c), in.CodeOld, in.CodeNew); err != nil {
		return AuthProblem(c, err)
	}
	return c.JSON(fiber.Map{"mobile_changed": true})
}

func (h *AuthAPI) updateProfile(c *fiber.Ctx) error {
	var in struct {
		Email      string `json:"email" form:"email"`
		Salutation string `json:"salutation" form:"salutation"`
		GivenName  string `json:"given_name" form:"given_name"`
		FamilyName string `json:"family_name" form:"family_name"`
	}
	if err := authParse(c, &in); err != nil {
		return authBadBody(c)
	}
	err := h.svc.UpdateProfile(c.UserContext(), authMeta(c), authSession(c), auth.ProfileUpdate{Email: in.Email, Salutation: in.Salutation, GivenName: in.GivenName, FamilyName: in.FamilyName})
	if err != nil {
		return AuthProblem(c, err)
	}
	return h.me(c)
}

func (h *AuthAPI) changeSecurityQuestion(c *fiber.Ctx) error {
	var in struct {
		Question string `json:"question" form:"question"`
		Answer   string `json:"answer" form:"answer"`
	}
	if err := authParse(c, &in); err != nil {
		return authBadBody(c)
	}
	if err := h.svc.ChangeSecurityQuestion(c.UserContext(), authMeta(c), authSession(c), in.Question, in.Answer); err != nil {
		return AuthProblem(c, err)
	}
	return c.JSON(fiber.Map{"security_question": in.Question})
}

func (h *AuthAPI) revokeConsent(c *fiber.Ctx) error {
	if err := h.svc.RevokeConsent(c.UserContext(), authMeta(c), MustPrincipal(c)); err != nil {
		return AuthProblem(c, err)
	}
	ClearSessionCookie(c)
	return c.JSON(fiber.Map{"consent": false, "logged_in": false})
}

func (h *AuthAPI) endOwnAccount(c *fiber.Ctx) error {
	if err := h.svc.EndOwnAccount(c.UserContext(), authMeta(c), authSession(c)); err != nil {
		return AuthProblem(c, err)
	}
	ClearSessionCookie(c)
	return c.JSON(fiber.Map{"account_ended": true})
}

func (h *AuthAPI) accountStatus(c *fiber.Ctx) error {
	v, err := h.svc.AccountStatusOf(c.UserContext(), MustPrincipal(c), c.Params("id"))
	if err != nil {
		return AuthProblem(c, err)
	}
	return c.JSON(fiber.Map{"id": v.ID, "role": v.Role, "status": v.Status, "lock_reason": v.LockReason, "failed_logins": v.FailedLogins, "locked_at": authTime(v.LockedAt)})
}

func (h *AuthAPI) lockAccount(c *fiber.Ctx) error {
	if err := h.svc.LockOnSuspicion(c.UserContext(), authMeta(c), MustPrincipal(c), c.Params("id")); err != nil {
		return AuthProblem(c, err)
	}
	return h.accountStatus(c)
}

func (h *AuthAPI) unlockAccount(c *fiber.Ctx) error {
	if err := h.svc.Unlock(c.UserContext(), authMeta(c), MustPrincipal(c), c.Params("id")); err != nil {
		return AuthProblem(c, err)
	}
	return h.accountStatus(c)
}

func (h *AuthAPI) endAccountStaff(c *fiber.Ctx) error {
	if err := h.svc.EndAccount(c.UserContext(), authMeta(c), MustPrincipal(c), c.Params("id")); err != nil {
		return AuthProblem(c, err)
	}
	return h.accountStatus(c)
}

func (h *AuthAPI) orgUsers(c *fiber.Ctx) error {
	list, err := h.svc.ListOrgUsers(c.UserContext(), MustPrincipal(c))
	if err != nil {
		return AuthProblem(c, err)
	}
	out := make([]fiber.Map, 0, len(list))
	for _, u := range list {
		out = append(out, fiber.Map{"id": u.AccountID, "salutation": u.Salutation, "given_name": u.GivenName, "family_name": u.FamilyName,
			"email": u.Email, "username": u.Username, "status": u.Status, "role": u.Role, "invited_at": authTime(u.InvitedAt),
			"invitation_expires_at": authTime(u.ExpiresAt), "consent": u.Consent})
	}
	return c.JSON(fiber.Map{"users": out})
}

func (h *AuthAPI) invite(c *fiber.Ctx) error {
	var in struct {
		Salutation string `json:"salutation" form:"salutation"`
		GivenName  string `json:"given_name" form:"given_name"`
		FamilyName string `json:"family_name" form:"family_name"`
		Email      string `json:"email" form:"email"`
	}
	if err := authParse(c, &in); err != nil {
		return authBadBody(c)
	}
	id, err := h.svc.InviteUser(c.UserContext(), authMeta(c), MustPrincipal(c), auth.Invitation{Salutation: in.Salutation, GivenName: in.GivenName, FamilyName: in.FamilyName, Email: in.Email})
	if err != nil {
		return AuthProblem(c, err)
	}
	return c.Status(fiber.StatusCreated).JSON(fiber.Map{"id": id, "status": "Eingeladen"})
}

func (h *AuthAPI) resendInvitation(c *fiber.Ctx) error {
	if err := h.svc.ResendInvitation(c.UserContext(), authMeta(c), MustPrincipal(c), c.Params("id")); err != nil {
		return AuthProblem(c, err)
	}
	return c.JSON(fiber.Map{"status": "Eingeladen", "resent": true})
}

func (h *AuthAPI) revokeInvitation(c *fiber.Ctx) error {
	if err := h.svc.RevokeInvitation(c.UserContext(), authMeta(c), MustPrincipal(c), c.Params("id")); err != nil {
		return AuthProblem(c, err)
	}
	return c.JSON(fiber.Map{"status": "Beendet"})
}
