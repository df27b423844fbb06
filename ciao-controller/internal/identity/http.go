package identity

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/ciao-project/ciao/ciao-controller/internal/api"
	"github.com/ciao-project/ciao/ciao-controller/internal/datastore"
	"github.com/golang/glog"
	"github.com/gorilla/mux"
	"golang.org/x/crypto/bcrypt"
)

// maxBody bounds auth request bodies.
const maxBody = 64 << 10

// timeFormat is Keystone's: microseconds, always "Z".
const timeFormat = "2006-01-02T15:04:05.000000Z"

// Handler returns the /v3 routes.
func (s *Service) Handler() http.Handler {
	r := mux.NewRouter()
	r.HandleFunc("/v3", s.version).Methods(http.MethodGet)
	r.HandleFunc("/v3/", s.version).Methods(http.MethodGet)
	r.HandleFunc("/v3/auth/tokens", s.createToken).Methods(http.MethodPost)
	r.HandleFunc("/v3/auth/tokens", s.checkToken).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc("/v3/auth/tokens", s.deleteToken).Methods(http.MethodDelete)
	r.HandleFunc("/v3/auth/projects", s.authProjects).Methods(http.MethodGet)
	r.HandleFunc("/v3/projects", s.listProjects).Methods(http.MethodGet) // `openstack project list`
	r.HandleFunc("/v3/projects/{project}", s.showProject).Methods(http.MethodGet)
	r.HandleFunc("/v3/users/{user}/projects", s.userProjects).Methods(http.MethodGet)
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusNotFound, "The resource could not be found.")
	})
	// A known path asked with another method: 405 with an Allow header,
	// as on the compute API (api.AllowedMethods), and Keystone's error.
	r.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Allow", strings.Join(api.AllowedMethods(r, req), ", "))
		writeError(w, http.StatusMethodNotAllowed, "The method "+req.Method+" is not allowed for the requested URL "+req.URL.Path+".")
	})
	return r
}

// Mount serves the identity routes for /v3 and /v3/... and everything
// else with next (the compute API).
func (s *Service) Mount(next http.Handler) http.Handler {
	h := s.Handler()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v3" || strings.HasPrefix(r.URL.Path, "/v3/") {
			h.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// --- wire types (Keystone v3 JSON) ---

type domainRef struct {
	ID   string `json:"id,omitempty"`
	Name string `json:"name,omitempty"`
}

type authRequest struct {
	Auth *struct {
		Identity *struct {
			Methods  []string `json:"methods"`
			Password *struct {
				User *struct {
					ID       string     `json:"id"`
					Name     string     `json:"name"`
					Domain   *domainRef `json:"domain"`
					Password string     `json:"password"`
				} `json:"user"`
			} `json:"password"`
			Token *struct {
				ID string `json:"id"`
			} `json:"token"`
		} `json:"identity"`
		Scope json.RawMessage `json:"scope"`
	} `json:"auth"`
}

type scopeRequest struct {
	Project *struct {
		ID     string     `json:"id"`
		Name   string     `json:"name"`
		Domain *domainRef `json:"domain"`
	} `json:"project"`
	Domain *domainRef       `json:"domain"`
	System *json.RawMessage `json:"system"`
}

type domainBody struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

type userBody struct {
	ID                string     `json:"id"`
	Name              string     `json:"name"`
	Domain            domainBody `json:"domain"`
	PasswordExpiresAt *string    `json:"password_expires_at"`
}

type projectBody struct {
	ID     string     `json:"id"`
	Name   string     `json:"name"`
	Domain domainBody `json:"domain"`
}

type roleBody struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

type endpointBody struct {
	ID        string `json:"id"`
	Interface string `json:"interface"`
	Region    string `json:"region"`
	RegionID  string `json:"region_id"`
	URL       string `json:"url"`
}

type serviceBody struct {
	ID        string         `json:"id"`
	Type      string         `json:"type"`
	Name      string         `json:"name"`
	Endpoints []endpointBody `json:"endpoints"`
}

type tokenBody struct {
	Methods   []string      `json:"methods"`
	User      userBody      `json:"user"`
	AuditIDs  []string      `json:"audit_ids"`
	ExpiresAt string        `json:"expires_at"`
	IssuedAt  string        `json:"issued_at"`
	Project   *projectBody  `json:"project,omitempty"`
	IsDomain  *bool         `json:"is_domain,omitempty"`
	Roles     []roleBody    `json:"roles,omitempty"`
	Catalog   []serviceBody `json:"catalog,omitempty"`
}

type projectListBody struct {
	ID          string  `json:"id"`
	Name        string  `json:"name"`
	DomainID    string  `json:"domain_id"`
	Description string  `json:"description"`
	Enabled     bool    `json:"enabled"`
	IsDomain    bool    `json:"is_domain"`
	ParentID    string  `json:"parent_id"`
	Links       linkSet `json:"links"`
}

type linkSet struct {
	Self     string  `json:"self"`
	Previous *string `json:"previous,omitempty"`
	Next     *string `json:"next,omitempty"`
}

// --- handlers ---

func (s *Service) version(w http.ResponseWriter, r *http.Request) {
	base := s.baseURL(r)
	writeJSON(w, http.StatusOK, map[string]any{"version": map[string]any{
		"id": "v3.14", "status": "stable", "updated": "2020-04-07T00:00:00Z",
		"links":       []map[string]string{{"rel": "self", "href": base + "/v3/"}},
		"media-types": []map[string]string{{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}},
	}})
}

// createToken is POST /v3/auth/tokens.
func (s *Service) createToken(w http.ResponseWriter, r *http.Request) {
	var req authRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "Malformed request body: "+err.Error())
		return
	}
	if req.Auth == nil || req.Auth.Identity == nil || len(req.Auth.Identity.Methods) == 0 {
		writeError(w, http.StatusBadRequest, "auth.identity.methods is required.")
		return
	}
	id := req.Auth.Identity
	ctx := r.Context()
	var (
		user    datastore.User
		methods []string
		err     error
	)
	switch {
	case len(id.Methods) == 1 && id.Methods[0] == "password":
		if id.Password == nil || id.Password.User == nil {
			writeError(w, http.StatusBadRequest, "auth.identity.password.user is required.")
			return
		}
		pu := id.Password.User
		user, err = s.findUser(ctx, pu.ID, pu.Name, pu.Domain)
		if err == nil {
			err = s.checkPassword(user.PasswordHash, pu.Password)
		} else if errors.Is(err, ErrUnauthorized) {
			s.checkPassword("", pu.Password) // same cost as a wrong password
		}
		methods = []string{"password"}
	case len(id.Methods) == 1 && id.Methods[0] == "token":
		if id.Token == nil || id.Token.ID == "" {
			writeError(w, http.StatusBadRequest, "auth.identity.token.id is required.")
			return
		}
		var ses session
		ses, err = s.validate(ctx, id.Token.ID)
		if errors.Is(err, ErrNoToken) {
			err = ErrUnauthorized
		}
		user, methods = ses.user, ses.tok.Methods
		if !containsStr(methods, "token") {
			methods = append([]string{"token"}, methods...)
		}
	default:
		s.unauthorized(w, r, "Unsupported authentication method(s): "+strings.Join(id.Methods, ", "))
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	projectID := ""
	if len(req.Auth.Scope) > 0 && string(req.Auth.Scope) != "null" && string(req.Auth.Scope) != `"unscoped"` {
		var sc scopeRequest
		if err := json.Unmarshal(req.Auth.Scope, &sc); err != nil {
			writeError(w, http.StatusBadRequest, "Malformed scope: "+err.Error())
			return
		}
		if sc.Project == nil {
			s.unauthorized(w, r, "Only project scope is supported.")
			return
		}
		p, err := s.findProject(ctx, sc.Project.ID, sc.Project.Name, sc.Project.Domain)
		if err == nil {
			var roles []string
			if roles, err = s.cfg.Store.Roles(ctx, user.ID, p.ID); err == nil && len(roles) == 0 {
				err = ErrUnauthorized
			}
		}
		if err != nil {
			s.fail(w, r, err)
			return
		}
		projectID = p.ID
	}
	tok, t, err := s.issue(ctx, user.ID, projectID, methods)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ses, err := s.load(ctx, t)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	glog.V(1).Infof("identity: token issued to %s (project %q)", user.Name, projectID)
	w.Header().Set("X-Subject-Token", tok)
	writeJSON(w, http.StatusCreated, map[string]tokenBody{"token": s.body(r, ses)})
}

// caller validates the X-Auth-Token; on failure it has written 401.
func (s *Service) caller(w http.ResponseWriter, r *http.Request) (session, bool) {
	ses, err := s.validate(r.Context(), r.Header.Get("X-Auth-Token"))
	if err != nil {
		if errors.Is(err, ErrNoToken) {
			err = ErrUnauthorized
		}
		s.fail(w, r, err)
		return session{}, false
	}
	return ses, true
}

// checkToken is GET and HEAD /v3/auth/tokens.
func (s *Service) checkToken(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.caller(w, r); !ok {
		return
	}
	ses, err := s.validate(r.Context(), r.Header.Get("X-Subject-Token"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if r.Method == http.MethodHead {
		w.WriteHeader(http.StatusOK)
		return
	}
	w.Header().Set("X-Subject-Token", r.Header.Get("X-Subject-Token"))
	writeJSON(w, http.StatusOK, map[string]tokenBody{"token": s.body(r, ses)})
}

// deleteToken is DELETE /v3/auth/tokens. Any valid caller may revoke a
// token it holds; revoking another user's token needs admin.
func (s *Service) deleteToken(w http.ResponseWriter, r *http.Request) {
	me, ok := s.caller(w, r)
	if !ok {
		return
	}
	subject := r.Header.Get("X-Subject-Token")
	ses, err := s.validate(r.Context(), subject)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if ses.user.ID != me.user.ID && !me.isAdmin() {
		writeError(w, http.StatusForbidden, "You are not authorized to perform the requested action.")
		return
	}
	if err := s.revoke(r.Context(), subject); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// authProjects is GET /v3/auth/projects, and GET /v3/projects (which
// `openstack project list` reads) with the same answer: the projects the
// caller has a role on. There is no listing of every project, even for
// admins.
func (s *Service) authProjects(w http.ResponseWriter, r *http.Request) {
	me, ok := s.caller(w, r)
	if !ok {
		return
	}
	s.writeProjects(w, r, me.user.ID)
}

// userProjects is GET /v3/users/{user}/projects.
func (s *Service) userProjects(w http.ResponseWriter, r *http.Request) {
	me, ok := s.caller(w, r)
	if !ok {
		return
	}
	uid := mux.Vars(r)["user"]
	if uid != me.user.ID && !me.isAdmin() {
		writeError(w, http.StatusForbidden, "You are not authorized to perform the requested action.")
		return
	}
	if _, err := s.cfg.Store.User(r.Context(), uid); err != nil {
		s.fail(w, r, err)
		return
	}
	s.writeProjects(w, r, uid)
}

func (s *Service) writeProjects(w http.ResponseWriter, r *http.Request, uid string) {
	ps, err := s.cfg.Store.UserProjects(r.Context(), uid)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.writeProjectList(w, r, ps)
}

// listProjects is GET /v3/projects: every project for an admin, the
// caller's own otherwise (Keystone refuses non-admins; the caller's own
// are what `openstack project list` wants to show them).
func (s *Service) listProjects(w http.ResponseWriter, r *http.Request) {
	me, ok := s.caller(w, r)
	if !ok {
		return
	}
	if !me.isAdmin() {
		s.writeProjects(w, r, me.user.ID)
		return
	}
	ps, err := s.cfg.Store.Projects(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.writeProjectList(w, r, ps)
}

// writeProjectList answers with the enabled projects of ps that pass the
// query's filters: name, domain_id (clients find a project by name with
// them, trusting the server to filter).
func (s *Service) writeProjectList(w http.ResponseWriter, r *http.Request, ps []datastore.Project) {
	q := r.URL.Query()
	base := s.baseURL(r)
	out := []projectListBody{}
	for _, p := range ps {
		if !p.Enabled || q.Has("name") && p.Name != q.Get("name") || q.Has("domain_id") && p.DomainID != q.Get("domain_id") {
			continue
		}
		out = append(out, projectBodyOf(base, p))
	}
	writeJSON(w, http.StatusOK, map[string]any{"projects": out, "links": linkSet{Self: base + r.URL.Path}})
}

func projectBodyOf(base string, p datastore.Project) projectListBody {
	return projectListBody{ID: p.ID, Name: p.Name, DomainID: p.DomainID, Description: p.Description,
		Enabled: p.Enabled, ParentID: p.DomainID, Links: linkSet{Self: base + "/v3/projects/" + p.ID}}
}

// showProject is GET /v3/projects/{project}: a project the caller has a
// role on, any project for an admin; 403 for another's, 404 for none.
func (s *Service) showProject(w http.ResponseWriter, r *http.Request) {
	me, ok := s.caller(w, r)
	if !ok {
		return
	}
	p, err := s.cfg.Store.Project(r.Context(), mux.Vars(r)["project"])
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if !me.isAdmin() {
		roles, err := s.cfg.Store.Roles(r.Context(), me.user.ID, p.ID)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		if len(roles) == 0 {
			writeError(w, http.StatusForbidden, "You are not authorized to perform the requested action.")
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"project": projectBodyOf(s.baseURL(r), p)})
}

// --- helpers ---

func (ses session) isAdmin() bool {
	return ses.project != nil && (ses.project.Name == "admin" || ses.project.Name == "service") && containsStr(ses.roles, "admin")
}

func containsStr(l []string, v string) bool {
	for _, x := range l {
		if x == v {
			return true
		}
	}
	return false
}

// domainID resolves a domain reference; only the default domain exists.
func domainID(d *domainRef) (string, error) {
	switch {
	case d == nil:
		return "", ErrBadRequest
	// Keystone on MySQL matches names case-insensitively; scripts say "default".
	case d.ID == DefaultDomainID, d.ID == "" && strings.EqualFold(d.Name, DefaultDomainName):
		return DefaultDomainID, nil
	}
	return "", ErrUnauthorized
}

func (s *Service) findUser(ctx context.Context, id, name string, d *domainRef) (datastore.User, error) {
	var u datastore.User
	var err error
	switch {
	case id != "":
		u, err = s.cfg.Store.User(ctx, id)
	case name != "":
		var did string
		if did, err = domainID(d); err != nil {
			return u, err
		}
		u, err = s.cfg.Store.UserByName(ctx, did, name)
	default:
		return u, ErrBadRequest
	}
	if errors.Is(err, datastore.ErrNotFound) || (err == nil && !u.Enabled) {
		return u, ErrUnauthorized
	}
	return u, err
}

func (s *Service) findProject(ctx context.Context, id, name string, d *domainRef) (datastore.Project, error) {
	var p datastore.Project
	var err error
	switch {
	case id != "":
		p, err = s.cfg.Store.Project(ctx, id)
	case name != "":
		var did string
		if did, err = domainID(d); err != nil {
			return p, err
		}
		p, err = s.cfg.Store.ProjectByName(ctx, did, name)
	default:
		return p, ErrBadRequest
	}
	if errors.Is(err, datastore.ErrNotFound) || (err == nil && !p.Enabled) {
		return p, ErrUnauthorized
	}
	return p, err
}

// checkPassword compares pw with a bcrypt hash; an empty hash (unknown
// user) is compared with a dummy of the same cost so that both failures
// take about as long.
func (s *Service) checkPassword(hash, pw string) error {
	if hash == "" {
		bcrypt.CompareHashAndPassword(s.dummyHash, []byte(pw))
		return ErrUnauthorized
	}
	if err := bcrypt.CompareHashAndPassword([]byte(hash), []byte(pw)); err != nil {
		return ErrUnauthorized
	}
	return nil
}

// baseURL is the configured public URL or the request's own origin.
func (s *Service) baseURL(r *http.Request) string {
	if s.cfg.PublicURL != "" {
		return strings.TrimRight(s.cfg.PublicURL, "/")
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// serviceID gives catalog entries stable ids.
func serviceID(typ string) string {
	return hashToken("service:" + typ)[:32]
}

func (s *Service) endpoints(typ, url string) []endpointBody {
	var out []endpointBody
	for _, i := range []string{"public", "internal", "admin"} {
		out = append(out, endpointBody{ID: hashToken(typ + ":" + i)[:32], Interface: i, Region: s.cfg.Region, RegionID: s.cfg.Region, URL: url})
	}
	return out
}

// body renders a token in Keystone's shape.
func (s *Service) body(r *http.Request, ses session) tokenBody {
	tb := tokenBody{
		Methods:   ses.tok.Methods,
		User:      userBody{ID: ses.user.ID, Name: ses.user.Name, Domain: domainBody{ID: DefaultDomainID, Name: DefaultDomainName}},
		AuditIDs:  []string{ses.tok.AuditID},
		ExpiresAt: ses.tok.ExpiresAt.UTC().Format(timeFormat),
		IssuedAt:  ses.tok.IssuedAt.UTC().Format(timeFormat),
	}
	if tb.Methods == nil {
		tb.Methods = []string{}
	}
	if ses.project == nil {
		return tb
	}
	base := s.baseURL(r)
	f := false
	tb.IsDomain = &f
	tb.Project = &projectBody{ID: ses.project.ID, Name: ses.project.Name, Domain: domainBody{ID: DefaultDomainID, Name: DefaultDomainName}}
	for _, role := range ses.roles {
		tb.Roles = append(tb.Roles, roleBody{ID: role, Name: role})
	}
	tb.Catalog = []serviceBody{
		{ID: serviceID("compute"), Type: "compute", Name: "ciao", Endpoints: s.endpoints("compute", base+"/v2.1/"+ses.project.ID)},
		{ID: serviceID("identity"), Type: "identity", Name: "keystone", Endpoints: s.endpoints("identity", base+"/v3")},
	}
	switch {
	case s.cfg.ImageURL != "":
		tb.Catalog = append(tb.Catalog, serviceBody{ID: serviceID("image"), Type: "image", Name: "glance",
			Endpoints: s.endpoints("image", strings.TrimRight(s.cfg.ImageURL, "/"))})
	case s.cfg.ImageOnBase:
		tb.Catalog = append(tb.Catalog, serviceBody{ID: serviceID("image"), Type: "image", Name: "glance",
			Endpoints: s.endpoints("image", base)})
	}
	return tb
}

// fail maps an error to Keystone's error object.
func (s *Service) fail(w http.ResponseWriter, r *http.Request, err error) {
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		writeError(w, http.StatusRequestEntityTooLarge, "Request body too large.")
	case errors.Is(err, ErrBadRequest):
		writeError(w, http.StatusBadRequest, "The request you have made is malformed.")
	case errors.Is(err, ErrUnauthorized):
		s.unauthorized(w, r, "The request you have made requires authentication.")
	case errors.Is(err, ErrNoToken), errors.Is(err, datastore.ErrNotFound):
		writeError(w, http.StatusNotFound, "Could not find token or resource.")
	default:
		glog.Errorf("identity: %s %s: %v", r.Method, r.URL.Path, err)
		writeError(w, http.StatusInternalServerError, "An unexpected error prevented the server from fulfilling your request.")
	}
}

// unauthorized writes Keystone's 401 with its WWW-Authenticate header.
func (s *Service) unauthorized(w http.ResponseWriter, r *http.Request, msg string) {
	glog.V(1).Infof("identity: %s %s: 401: %s", r.Method, r.URL.Path, msg)
	w.Header().Set("WWW-Authenticate", `Keystone uri="`+s.baseURL(r)+`/v3"`)
	writeError(w, http.StatusUnauthorized, msg)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]any{"error": map[string]any{"code": code, "title": http.StatusText(code), "message": msg}})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		glog.V(1).Infof("identity: writing response: %v", err)
	}
}
