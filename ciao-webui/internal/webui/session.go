package webui

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"strings"
	"time"
)

// CookieName is the cookie holding the Keystone token.
const CookieName = "ciao_token"

// maxBody bounds the bodies the webui reads itself (sign-in, identity
// answers).
const maxBody = 1 << 20

// Session is what the browser learns about its sign-in (never the token).
type Session struct {
	User        string    `json:"user"`
	ProjectID   string    `json:"project_id"`
	ProjectName string    `json:"project_name"`
	Roles       []string  `json:"roles"`
	Admin       bool      `json:"admin"`
	ExpiresAt   time.Time `json:"expires_at"`
}

type signInRequest struct {
	User     string `json:"user"`
	Password string `json:"password"`
	Project  string `json:"project"`
	Domain   string `json:"domain"`
}

// tokenResponse is the part of a Keystone v3 token body the webui reads.
type tokenResponse struct {
	Token struct {
		ExpiresAt string `json:"expires_at"`
		User      struct {
			Name string `json:"name"`
		} `json:"user"`
		Project *struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		} `json:"project"`
		Roles []struct {
			Name string `json:"name"`
		} `json:"roles"`
	} `json:"token"`
}

// apiError is an error with the HTTP status to answer and words for the
// user.
type apiError struct {
	code int
	msg  string
}

func (e *apiError) Error() string { return e.msg }

func (s *Server) signIn(w http.ResponseWriter, r *http.Request) {
	var req signInRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "The sign-in request is not valid JSON: "+err.Error())
		return
	}
	req.User, req.Project, req.Domain = strings.TrimSpace(req.User), strings.TrimSpace(req.Project), strings.TrimSpace(req.Domain)
	if req.User == "" || req.Password == "" {
		writeError(w, http.StatusBadRequest, "Enter a user name and a password.")
		return
	}
	if req.Domain == "" {
		req.Domain = "default"
	}
	tok, ses, err := s.authenticate(r.Context(), req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.cfg.Log.Infof("webui: %s signed in to project %s (%s)", ses.User, ses.ProjectName, ses.ProjectID)
	setTokenCookie(w, tok, ses.ExpiresAt)
	writeJSON(w, http.StatusCreated, ses)
}

// authenticate gets a project-scoped token for req.
func (s *Server) authenticate(ctx context.Context, req signInRequest) (string, Session, error) {
	user := map[string]any{"name": req.User, "domain": map[string]string{"id": req.Domain}, "password": req.Password}
	ident := map[string]any{"methods": []string{"password"}, "password": map[string]any{"user": user}}
	if req.Project != "" {
		scope := map[string]any{"project": map[string]any{"name": req.Project, "domain": map[string]string{"id": req.Domain}}}
		return s.issue(ctx, map[string]any{"auth": map[string]any{"identity": ident, "scope": scope}})
	}
	// No project: take the user's only project.
	unscoped, _, err := s.issue(ctx, map[string]any{"auth": map[string]any{"identity": ident}})
	if err != nil {
		return "", Session{}, err
	}
	defer s.revoke(context.WithoutCancel(ctx), unscoped)
	var projects struct {
		Projects []struct{ ID, Name string } `json:"projects"`
	}
	if err := s.identityCall(ctx, http.MethodGet, "/auth/projects", unscoped, "", nil, &projects); err != nil {
		return "", Session{}, err
	}
	switch len(projects.Projects) {
	case 0:
		return "", Session{}, &apiError{http.StatusUnauthorized, "You have no role on any project: ask an administrator to add you to one."}
	case 1:
	default:
		var names []string
		for _, p := range projects.Projects {
			names = append(names, p.Name)
		}
		return "", Session{}, &apiError{http.StatusBadRequest, "You belong to several projects; enter one of: " + strings.Join(names, ", ") + "."}
	}
	tokIdent := map[string]any{"methods": []string{"token"}, "token": map[string]string{"id": unscoped}}
	scope := map[string]any{"project": map[string]string{"id": projects.Projects[0].ID}}
	return s.issue(ctx, map[string]any{"auth": map[string]any{"identity": tokIdent, "scope": scope}})
}

// issue is POST /v3/auth/tokens; it returns the token and, for a scoped
// token, the session it describes.
func (s *Server) issue(ctx context.Context, body any) (string, Session, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return "", Session{}, err
	}
	var tr tokenResponse
	var hdr http.Header
	if err := s.identityCall(ctx, http.MethodPost, "/auth/tokens", "", "", b, &tr, &hdr); err != nil {
		var ae *apiError
		if errors.As(err, &ae) && ae.code == http.StatusUnauthorized {
			ae.msg = "Sign-in refused: the user name, password or project is wrong. The identity service said: " + ae.msg
		}
		return "", Session{}, err
	}
	tok := hdr.Get("X-Subject-Token")
	if tok == "" {
		return "", Session{}, &apiError{http.StatusBadGateway, "The identity service answered without a token (no X-Subject-Token header)."}
	}
	ses, err := sessionOf(tr)
	return tok, ses, err
}

func sessionOf(tr tokenResponse) (Session, error) {
	t := tr.Token
	ses := Session{User: t.User.Name}
	if t.Project != nil {
		ses.ProjectID, ses.ProjectName = t.Project.ID, t.Project.Name
	}
	for _, r := range t.Roles {
		ses.Roles = append(ses.Roles, r.Name)
		if r.Name == "admin" && (ses.ProjectName == "admin" || ses.ProjectName == "service") {
			ses.Admin = true
		}
	}
	exp, err := time.Parse(time.RFC3339Nano, t.ExpiresAt)
	if err != nil {
		return ses, &apiError{http.StatusBadGateway, fmt.Sprintf("The identity service sent an unreadable expiry time %q.", t.ExpiresAt)}
	}
	ses.ExpiresAt = exp
	return ses, nil
}

// identityCall sends one request to the identity service. A non-2xx
// answer becomes an *apiError carrying Keystone's message. If hdr is
// given, the response headers are stored there.
func (s *Server) identityCall(ctx context.Context, method, path, authTok, subjectTok string, body []byte, out any, hdr ...*http.Header) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.identity.String()+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if authTok != "" {
		req.Header.Set("X-Auth-Token", authTok)
	}
	if subjectTok != "" {
		req.Header.Set("X-Subject-Token", subjectTok)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return &apiError{http.StatusBadGateway, fmt.Sprintf("The identity service at %s cannot be reached: %v", s.identity, err)}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return &apiError{http.StatusBadGateway, "Reading the identity service's answer failed: " + err.Error()}
	}
	if len(hdr) > 0 {
		*hdr[0] = resp.Header
	}
	if resp.StatusCode/100 != 2 {
		return &apiError{resp.StatusCode, upstreamMessage(resp.StatusCode, b)}
	}
	if out == nil || len(b) == 0 {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return &apiError{http.StatusBadGateway, "The identity service sent unreadable JSON: " + err.Error()}
	}
	return nil
}

// upstreamMessage takes the message of an OpenStack error object, or the
// text of a plain body, or else the status text.
func upstreamMessage(code int, b []byte) string {
	var e struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(b, &e) == nil && e.Error.Message != "" {
		return e.Error.Message
	}
	if t := strings.TrimSpace(string(b)); t != "" && len(t) < 500 {
		return t
	}
	return http.StatusText(code)
}

// whoAmI validates the cookie's token and describes the session.
func (s *Server) whoAmI(w http.ResponseWriter, r *http.Request) {
	tok := tokenOf(r)
	if tok == "" {
		writeError(w, http.StatusUnauthorized, "You are not signed in, or your session has expired.")
		return
	}
	var tr tokenResponse
	if err := s.identityCall(r.Context(), http.MethodGet, "/auth/tokens", tok, tok, nil, &tr); err != nil {
		var ae *apiError
		if errors.As(err, &ae) && (ae.code == http.StatusUnauthorized || ae.code == http.StatusNotFound) {
			clearTokenCookie(w)
			writeError(w, http.StatusUnauthorized, "Your session has expired or was revoked: sign in again.")
			return
		}
		s.fail(w, r, err)
		return
	}
	ses, err := sessionOf(tr)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, ses)
}

// signOut revokes the token (best effort: an expired token is already
// useless) and clears the cookie.
func (s *Server) signOut(w http.ResponseWriter, r *http.Request) {
	if tok := tokenOf(r); tok != "" {
		s.revoke(r.Context(), tok)
	}
	clearTokenCookie(w)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) revoke(ctx context.Context, tok string) {
	if err := s.identityCall(ctx, http.MethodDelete, "/auth/tokens", tok, tok, nil, nil); err != nil {
		s.cfg.Log.Infof("webui: revoking a token: %v", err)
	}
}

// relayable says whether /api<path> is one of the controller's APIs the
// UI uses: the compute API (/v2.1/...), the workloads API (/workloads,
// /{tenant}/workloads and below) and the image API (/v2/images...).
// Identity (/v3) and anything else is not relayed.
func relayable(path string) bool {
	p, ok := strings.CutPrefix(path, "/api/")
	if !ok {
		return false
	}
	under := func(p, root string) bool { return p == root || strings.HasPrefix(p, root+"/") }
	if strings.HasPrefix(p, "v2.1/") || under(p, "v2/images") || under(p, "workloads") {
		return true
	}
	tenant, rest, ok := strings.Cut(p, "/")
	return ok && tenant != "" && tenant != "v3" && under(rest, "workloads")
}

// relay forwards /api/v2.1/..., /api/v2/images..., /api/workloads... and
// /api/{tenant}/workloads... to the controller with the cookie's token.
func (s *Server) relay() http.Handler {
	rp := &httputil.ReverseProxy{
		Transport: s.client.Transport,
		Rewrite: func(pr *httputil.ProxyRequest) {
			tok := tokenOf(pr.In)
			pr.Out.URL.Scheme, pr.Out.URL.Host = s.controller.Scheme, s.controller.Host
			pr.Out.URL.Path = s.controller.Path + strings.TrimPrefix(pr.In.URL.Path, "/api")
			pr.Out.URL.RawPath = ""
			pr.Out.Host = s.controller.Host
			pr.Out.Header.Del("Cookie")
			pr.Out.Header.Del("X-Ciao-Webui")
			pr.Out.Header.Set("X-Auth-Token", tok)
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			s.cfg.Log.Errorf("webui: %s %s: controller: %v", r.Method, r.URL.Path, err)
			writeError(w, http.StatusBadGateway, fmt.Sprintf("The controller at %s cannot be reached: %v", s.controller, err))
		},
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !relayable(r.URL.Path) {
			writeError(w, http.StatusNotFound, "No such API: "+r.URL.Path)
			return
		}
		if tokenOf(r) == "" {
			writeError(w, http.StatusUnauthorized, "You are not signed in, or your session has expired.")
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
		defer cancel()
		rp.ServeHTTP(w, r.WithContext(ctx))
	})
}

func tokenOf(r *http.Request) string {
	c, err := r.Cookie(CookieName)
	if err != nil {
		return ""
	}
	return c.Value
}

func setTokenCookie(w http.ResponseWriter, tok string, exp time.Time) {
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: tok, Path: "/", Expires: exp,
		HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
}

func clearTokenCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
}

func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		ae = &apiError{http.StatusInternalServerError, err.Error()}
	}
	if ae.code >= 500 {
		s.cfg.Log.Errorf("webui: %s %s: %v", r.Method, r.URL.Path, err)
	} else {
		s.cfg.Log.Infof("webui: %s %s: %d %v", r.Method, r.URL.Path, ae.code, err)
	}
	writeError(w, ae.code, ae.msg)
}

// writeError sends the OpenStack error object, so the browser reads the
// controller's errors and the webui's own the same way.
func writeError(w http.ResponseWriter, code int, msg string) {
	var b struct {
		Error struct {
			Code    int    `json:"code"`
			Name    string `json:"name"`
			Message string `json:"message"`
		} `json:"error"`
	}
	b.Error.Code, b.Error.Name, b.Error.Message = code, http.StatusText(code), msg
	writeJSON(w, code, b)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
