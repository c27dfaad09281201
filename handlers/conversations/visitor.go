package conversations

import (
	"net/http"

	"pommy.ai/edge/handlers/web"
)

// The visitor's side of conversations: the routes the widget calls, with a
// visitor scope (web.Scope.VisitorID). A visitor sees only their own
// conversations, rendered for AudienceVisitor.

func visitorNotYet() error {
	return web.Errorf(http.StatusNotImplemented, "not_implemented", "the visitor side of conversations is not built yet")
}

func (rt *Routes) VisitorUpdate(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	return visitorNotYet()
}
func (rt *Routes) VisitorConversations(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	return visitorNotYet()
}
func (rt *Routes) VisitorStart(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	return visitorNotYet()
}
func (rt *Routes) VisitorConversation(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	return visitorNotYet()
}
func (rt *Routes) VisitorMessages(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	return visitorNotYet()
}
func (rt *Routes) VisitorSend(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	return visitorNotYet()
}
func (rt *Routes) VisitorPutAttachment(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	return visitorNotYet()
}
func (rt *Routes) VisitorGetAttachment(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	return visitorNotYet()
}
func (rt *Routes) VisitorTyping(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	return visitorNotYet()
}
func (rt *Routes) VisitorRead(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	return visitorNotYet()
}
func (rt *Routes) VisitorCSAT(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	return visitorNotYet()
}
func (rt *Routes) VisitorEvents(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	return visitorNotYet()
}
func (rt *Routes) VisitorEventStream(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	return visitorNotYet()
}
